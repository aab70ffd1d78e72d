//! How every command writes a number for people: counts with thousands separators
//! (`5,158`), a counted noun in the singular or plural (`1 record`, `5,158 records`), and rates
//! as whole units per second (`45,678/s`). The `--json` outputs keep plain numbers.

/// `1234567` as `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` and the noun that fits it: `1 record`, `0 records`, `5,158 records`.
pub fn counted(n: u64, one: &str, many: &str) -> String {
    let noun = if n == 1 { one } else { many };
    format!("{} {noun}", count(n))
}

/// A rate as whole units per second: `45,678/s` (a progress bar needs no decimals); a rate
/// not yet known (no time has passed) is `0/s`.
pub fn rate(per_sec: f64) -> String {
    // `as` saturates: NaN is 0, infinity the largest count.
    let whole = per_sec.max(0.0).round() as u64;
    format!("{}/s", count(whole))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_a_comma_every_three_digits() {
        let cases = [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1_000, "1,000"),
            (5_158, "5,158"),
            (14_169, "14,169"),
            (100_000, "100,000"),
            (1_234_567, "1,234,567"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ];
        for (n, want) in cases {
            assert_eq!(count(n), want);
        }
    }

    #[test]
    fn a_counted_noun_is_singular_for_one_only() {
        assert_eq!(counted(0, "record", "records"), "0 records");
        assert_eq!(counted(1, "record", "records"), "1 record");
        assert_eq!(counted(2, "record", "records"), "2 records");
        assert_eq!(counted(14_169, "record", "records"), "14,169 records");
        assert_eq!(counted(1, "CSV file", "CSV files"), "1 CSV file");
    }

    #[test]
    fn rates_are_whole_numbers_per_second() {
        assert_eq!(rate(45678.1234), "45,678/s");
        assert_eq!(rate(0.4), "0/s");
        assert_eq!(rate(0.5), "1/s");
        assert_eq!(rate(f64::NAN), "0/s");
        assert_eq!(rate(-3.0), "0/s");
        assert_eq!(rate(1_999_999.9), "2,000,000/s");
    }
}

//! The file store's behaviour on a local directory and, `#[ignore]`d without one, on S3.

use super::*;
use ccfs_protocol::{ResponseId, ZipFileName};

/// The key of attempt 1 of job `n`'s file.
fn name(n: u8) -> FileKey {
    let name = ZipFileName::new(
        jiff::civil::date(2024, 5, 1),
        &ResponseId::from_bytes([n; 16]),
    );
    FileKey::of_attempt(&name, 1)
}

async fn read(blobs: &Blobs, name: &FileKey, range: Option<Range<u64>>) -> Vec<u8> {
    let parts: Vec<Bytes> = blobs
        .get(name, range)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    parts.concat()
}

/// What every file store does: store a file in parts with its hash, serve it whole and by
/// range, delete it (twice), and say "not found" for it after.
async fn put_get_range_delete(blobs: &Blobs, scratch: &Path) {
    blobs.ping().await.expect("the store answers");
    let name = name(1);
    let src = scratch.join("src.bin");
    // Over two upload parts, so S3 sees a real multipart upload.
    let data: Vec<u8> = (0..(PART as u32 * 2 + 3_000_000))
        .map(|i| (i % 251) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    let stored = blobs.put_file(&name, &src).await.unwrap();
    assert_eq!(stored.size, data.len() as u64);
    assert_eq!(stored.sha256, hex::encode(Sha256::digest(&data)));
    assert_eq!(read(blobs, &name, None).await, data);
    assert_eq!(read(blobs, &name, Some(10..20)).await, data[10..20]);
    let tail = data.len() as u64 - 5..data.len() as u64;
    assert_eq!(read(blobs, &name, Some(tail)).await, data[data.len() - 5..]);
    blobs.delete(&name).await.unwrap();
    blobs.delete(&name).await.unwrap();
    assert!(matches!(
        blobs.get(&name, None).await,
        Err(BlobError::NotFound(n)) if n == name
    ));
}

/// A file whose upload has begun but not completed cannot be read.
async fn unfinished_uploads_are_invisible(blobs: &Blobs) {
    let name = name(2);
    let upload = blobs
        .store
        .put_multipart(&Blobs::path(&name))
        .await
        .unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
    writer.write(&vec![7u8; PART + 1]);
    // The first part is uploaded once there is room for no more in flight.
    writer.wait_for_capacity(0).await.unwrap();
    assert!(matches!(
        blobs.get(&name, None).await,
        Err(BlobError::NotFound(_))
    ));
    writer.finish().await.unwrap();
    assert_eq!(read(blobs, &name, None).await.len(), PART + 1);
    blobs.delete(&name).await.unwrap();
}

/// A file copied from one store to another arrives whole, and its digest says so; a file
/// that is not there has no digest.
async fn copy_and_digest(from: &Blobs, to: &Blobs, scratch: &Path) {
    let name = name(3);
    let data: Vec<u8> = (0..(PART as u32 + 12_345))
        .map(|i| (i % 241) as u8)
        .collect();
    let src = scratch.join("copy.bin");
    std::fs::write(&src, &data).unwrap();
    let put = from.put_file(&name, &src).await.unwrap();
    assert_eq!(to.digest(&name).await.unwrap(), None);
    assert_eq!(to.copy_from(from, &name).await.unwrap(), put);
    assert_eq!(to.digest(&name).await.unwrap(), Some(put));
    assert_eq!(read(to, &name, None).await, data);
    assert!(matches!(
        to.copy_from(from, &name_missing()).await,
        Err(BlobError::NotFound(_))
    ));
    from.delete(&name).await.unwrap();
    to.delete(&name).await.unwrap();
}

/// The attempts of one file, and its key from before attempts, are separate objects: an
/// upload under one neither replaces nor shows under another.
async fn attempts_are_separate_objects(blobs: &Blobs, scratch: &Path) {
    let one = name(4);
    let two = FileKey::of_attempt(&one.name, 2);
    let legacy = FileKey {
        name: one.name.clone(),
        attempt: None,
    };
    let (a, b) = (scratch.join("a.bin"), scratch.join("b.bin"));
    std::fs::write(&a, b"attempt one").unwrap();
    std::fs::write(&b, b"attempt two").unwrap();
    blobs.put_file(&two, &b).await.unwrap();
    blobs.put_file(&one, &a).await.unwrap();
    assert_eq!(read(blobs, &two, None).await, b"attempt two");
    assert_eq!(read(blobs, &one, None).await, b"attempt one");
    assert!(matches!(
        blobs.get(&legacy, None).await,
        Err(BlobError::NotFound(k)) if k == legacy
    ));
    blobs.delete(&one).await.unwrap();
    assert_eq!(read(blobs, &two, None).await, b"attempt two");
    blobs.delete(&two).await.unwrap();
}

/// The local store reads a file in large blocks (see `local_read`), a range too, and the
/// bytes come whole and in order.
async fn local_reads_are_large_blocks(blobs: &Blobs, scratch: &Path) {
    let name = name(5);
    let src = scratch.join("blocks.bin");
    let data: Vec<u8> = (0..(local_read::BLOCK as u32 * 3 + 1000))
        .map(|i| (i % 239) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    blobs.put_file(&name, &src).await.unwrap();
    for range in [None, Some(100..data.len() as u64 - 1)] {
        let chunks: Vec<Bytes> = blobs
            .get(&name, range.clone())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let (start, end) = range
            .clone()
            .map_or((0, data.len()), |r| (r.start as usize, r.end as usize));
        let (last, full) = chunks.split_last().unwrap();
        assert!(
            full.iter().all(|c| c.len() == local_read::BLOCK),
            "{range:?}"
        );
        assert_eq!(full.len(), (end - start) / local_read::BLOCK);
        assert_eq!(last.len(), (end - start) % local_read::BLOCK);
        assert_eq!(chunks.concat(), data[start..end]);
    }
    blobs.delete(&name).await.unwrap();
}

fn name_missing() -> FileKey {
    name(99)
}

#[tokio::test]
async fn local_directory_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let blobs = Blobs::open(&config).unwrap();
    put_get_range_delete(&blobs, dir.path()).await;
    unfinished_uploads_are_invisible(&blobs).await;
    attempts_are_separate_objects(&blobs, dir.path()).await;
    local_reads_are_large_blocks(&blobs, dir.path()).await;
    let other = Blobs::open_url(&BlobUrl::Local(dir.path().join("other")), &config).unwrap();
    copy_and_digest(&blobs, &other, dir.path()).await;
}

/// The same on an S3-compatible store: needs one (`scripts/garage` starts Garage and prints
/// the variables), so it is `#[ignore]`d without `--include-ignored`.
#[tokio::test]
#[ignore = "needs S3: eval \"$(scripts/garage start)\", then pass --include-ignored"]
async fn s3_store() {
    let Some(config) = s3_test_config() else {
        panic!("{}", S3_TEST_HELP);
    };
    let blobs = Blobs::open(&config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    put_get_range_delete(&blobs, dir.path()).await;
    unfinished_uploads_are_invisible(&blobs).await;
    attempts_are_separate_objects(&blobs, dir.path()).await;
    // Both ways between a local directory and the bucket (what migrate-store does).
    let local = Blobs::open_url(&BlobUrl::Local(dir.path().join("local")), &config).unwrap();
    copy_and_digest(&local, &blobs, dir.path()).await;
    copy_and_digest(&blobs, &local, dir.path()).await;

    // A store that cannot be reached, and credentials the store refuses, fail the ping.
    let wrong_key = Config {
        aws_secret_access_key: Some(crate::config::Secret::new("not-the-secret")),
        ..config.clone()
    };
    assert!(Blobs::open(&wrong_key).unwrap().ping().await.is_err());
    let nowhere = Config {
        aws_endpoint_url: Some("http://127.0.0.1:9".parse().unwrap()),
        ..config
    };
    assert!(Blobs::open(&nowhere).unwrap().ping().await.is_err());
}

const S3_TEST_HELP: &str = "CCFS_TEST_S3_URL is not set: the S3 tests need a bucket, e.g. \
    eval \"$(scripts/garage start)\" (which sets CCFS_TEST_S3_URL and the AWS_* variables)";

/// The test bucket (`CCFS_TEST_S3_URL`, with a fresh prefix per call) and the `AWS_*`
/// variables, as a configuration.
fn s3_test_config() -> Option<Config> {
    let url = std::env::var("CCFS_TEST_S3_URL").ok()?;
    let fresh = format!(
        "{}/t-{}",
        url.trim_end_matches('/'),
        hex::encode(rand::random::<[u8; 6]>())
    );
    Some(Config {
        blob_url: Some(BlobUrl::parse(&fresh).expect("CCFS_TEST_S3_URL is s3://BUCKET/PREFIX")),
        ..Config::load_with(None, |k| {
            std::env::var(k).ok().filter(|_| k.starts_with("AWS_"))
        })
        .expect("the AWS_* variables make a configuration")
    })
}

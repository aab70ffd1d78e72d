//! Conformance: the records part (import outcomes, conflicts, the export stream).

use std::sync::Arc;

use ccfs_protocol::Record;
use futures::{StreamExt, TryStreamExt};

use super::{at_ms, at_s, collect, keys, query, record, BASE};
use crate::store::{InsertOutcome, OnConflict, Store, MAX_CONFLICTS_LISTED};

/// Stores `records` and returns `(inserted, already present, conflicts, replaced)`, after
/// checking that `check_records` predicted exactly that outcome.
async fn insert(
    store: &Arc<dyn Store>,
    records: &[Record],
    on_conflict: OnConflict,
) -> (u64, u64, u64, u64) {
    let o = insert_outcome(store, records, on_conflict).await;
    (o.inserted, o.already_present, o.conflicts, o.replaced)
}

async fn insert_outcome(
    store: &Arc<dyn Store>,
    records: &[Record],
    on_conflict: OnConflict,
) -> InsertOutcome {
    let predicted = store
        .check_records(records, on_conflict)
        .await
        .expect("check");
    let o = store
        .insert_records(records, on_conflict)
        .await
        .expect("insert");
    assert_eq!(predicted, o, "check_records predicted another outcome");
    o
}

pub async fn insert_batches(store: Arc<dyn Store>) {
    use OnConflict::*;
    let all = |store: Arc<dyn Store>| async move {
        collect(&store, query("d1", BASE - 1000, BASE + 100_000, None, None)).await
    };
    assert_eq!(insert(&store, &[], Fail).await, (0, 0, 0, 0));

    let r1 = record("d1", "r1", BASE, "acc1", "a1");
    let r2 = record("d1", "r2", BASE + 1, "acc1", "a1");
    let r3 = record("d1", "r3", BASE + 2, "acc1", "a1");
    let r4 = record("d1", "r4", BASE + 3, "acc1", "a1");
    assert_eq!(
        insert(&store, &[r1.clone(), r2.clone(), r3.clone()], Fail).await,
        (3, 0, 0, 0)
    );

    // r2 is stored already, r4 comes twice: one new row.
    assert_eq!(
        insert(&store, &[r2.clone(), r4.clone(), r4.clone()], Fail).await,
        (1, 2, 0, 0)
    );
    assert_eq!(all(store.clone()).await, vec![r1.clone(), r2, r3, r4]);

    // The same id belongs to each developer separately.
    assert_eq!(
        insert(&store, &[record("d2", "r1", BASE, "acc1", "a1")], Fail).await,
        (1, 0, 0, 0)
    );

    // More than one statement's worth, with duplicates of earlier rows and within the batch.
    let mut big: Vec<Record> = (0..2500)
        .map(|i| record("d1", &format!("big{i:05}"), BASE + 10 + i, "acc1", "a1"))
        .collect();
    big.push(r1.clone());
    big.push(big[1234].clone());
    assert_eq!(insert(&store, &big, Fail).await, (2500, 2, 0, 0));
    assert_eq!(insert(&store, &big, Fail).await, (0, 2502, 0, 0));
    assert_eq!(all(store.clone()).await.len(), 2504);
}

/// A record whose id is stored with different content: `Fail` stores nothing of the batch
/// and names the conflicts, `Skip` keeps the stored version, `Replace` overwrites it; an
/// unchanged resend is never a conflict.
pub async fn conflicts(store: Arc<dyn Store>) {
    use OnConflict::*;
    let all = |store: Arc<dyn Store>| async move {
        collect(&store, query("d1", BASE - 1000, BASE + 100_000, None, None)).await
    };
    let r1 = record("d1", "r1", BASE, "acc1", "a1");
    let r2 = record("d1", "r2", BASE + 1, "acc1", "a1");
    assert_eq!(
        insert(&store, &[r1.clone(), r2.clone()], Fail).await,
        (2, 0, 0, 0)
    );

    // Any column counts, the times too (at whole seconds: a finer part is not a change).
    let mut fraction = r1.clone();
    fraction.begin_time = at_ms(BASE * 1000 + 999);
    assert_eq!(insert(&store, &[fraction], Fail).await, (0, 1, 0, 0));
    let mut corrected = r1.clone();
    corrected.op_type = "3".into();
    corrected.begin_time = at_s(BASE + 50);
    let mut last_column = r2.clone();
    last_column.skill_info_sn = "9".into();
    let mut end = r2.clone();
    end.end_time = at_s(BASE + 2);

    // Fail: nothing of the batch is stored, not even the new record before the conflict.
    let r3 = record("d1", "r3", BASE + 2, "acc1", "a1");
    let o = insert_outcome(
        &store,
        &[
            r3.clone(),
            corrected.clone(),
            r2.clone(),
            last_column.clone(),
        ],
        Fail,
    )
    .await;
    assert_eq!(
        o,
        InsertOutcome {
            conflicts: 2,
            first_conflicts: vec![(1, "r1".into()), (3, "r2".into())],
            ..InsertOutcome::default()
        }
    );
    assert_eq!(all(store.clone()).await, vec![r1.clone(), r2.clone()]);
    assert_eq!(insert(&store, &[end.clone()], Fail).await, (0, 0, 1, 0));

    // Skip: the rest is stored, the stored versions stay.
    assert_eq!(
        insert(
            &store,
            &[
                r3.clone(),
                corrected.clone(),
                r2.clone(),
                last_column.clone()
            ],
            Skip
        )
        .await,
        (1, 1, 2, 0)
    );
    assert_eq!(
        all(store.clone()).await,
        vec![r1.clone(), r2.clone(), r3.clone()]
    );

    // Replace: the new content is stored, read back in every column.
    let o = insert_outcome(
        &store,
        &[corrected.clone(), r3.clone(), end.clone()],
        Replace,
    )
    .await;
    assert_eq!(
        (o.inserted, o.already_present, o.conflicts, o.replaced),
        (0, 1, 2, 2)
    );
    assert_eq!(o.first_conflicts, vec![(0, "r1".into()), (2, "r2".into())]);
    assert_eq!(
        all(store.clone()).await,
        vec![end.clone(), r3.clone(), corrected.clone()]
    );
    // Sent again unchanged, the corrected record is simply present.
    assert_eq!(
        insert(&store, &[corrected.clone(), end.clone()], Fail).await,
        (0, 2, 0, 0)
    );

    // Within one batch: a second version of a new id conflicts with the first. With Replace
    // each record is compared with the one before it, and the last one wins.
    let n1 = record("d1", "n1", BASE + 3, "acc1", "a1");
    let mut n1b = n1.clone();
    n1b.agent_id = "a2".into();
    assert_eq!(
        insert(&store, &[n1.clone(), n1b.clone()], Fail).await,
        (0, 0, 1, 0)
    );
    assert_eq!(all(store.clone()).await.len(), 3);
    assert_eq!(
        insert(&store, &[n1.clone(), n1b.clone(), n1.clone()], Skip).await,
        (1, 1, 1, 0)
    );
    assert_eq!(
        insert(&store, &[n1b.clone(), n1.clone(), n1b.clone()], Replace).await,
        (0, 0, 3, 3)
    );
    let stored = all(store.clone()).await;
    assert_eq!(stored.iter().find(|r| r.id == "n1"), Some(&n1b));

    // The same id of another developer is not a conflict.
    let mut other = corrected.clone();
    other.developer_id = "d9".into();
    other.op_type = "7".into();
    assert_eq!(insert(&store, &[other], Fail).await, (1, 0, 0, 0));

    // Across statements: conflicts past the first thousand records are found and counted in
    // full, and listed up to the limit, by their index in the whole batch.
    let big: Vec<Record> = (0..2500)
        .map(|i| record("d5", &format!("b{i:05}"), BASE + i, "acc1", "a1"))
        .collect();
    assert_eq!(insert(&store, &big, Fail).await, (2500, 0, 0, 0));
    let mut changed = big.clone();
    for r in changed.iter_mut().skip(1100).step_by(100) {
        r.phone_no = "changed".into();
    }
    changed.push(record("d5", "new", BASE, "acc1", "a1"));
    let o = insert_outcome(&store, &changed, Fail).await;
    assert_eq!((o.inserted, o.conflicts), (0, 14));
    assert_eq!(o.first_conflicts.len(), MAX_CONFLICTS_LISTED);
    assert_eq!(o.first_conflicts[0], (1100, "b01100".into()));
    assert_eq!(o.first_conflicts[9], (2000, "b02000".into()));
    let o = insert_outcome(&store, &changed, Replace).await;
    assert_eq!(
        (o.inserted, o.already_present, o.conflicts, o.replaced),
        (1, 2486, 14, 14)
    );
    let stored = collect(&store, query("d5", BASE - 10, BASE + 10_000, None, None)).await;
    assert_eq!(
        stored.iter().filter(|r| r.phone_no == "changed").count(),
        14
    );
    assert_eq!(stored.len(), 2501);
}

pub async fn stream(store: Arc<dyn Store>) {
    let mut records = vec![
        record("d1", "b", BASE, "acc1", "a1"),
        record("d1", "a", BASE, "acc2", "a2"),
        record("d1", "c", BASE + 10, "acc1", "a2"),
        record("d1", "d", BASE + 19, "acc2", "a1"),
        record("d1", "end", BASE + 20, "acc1", "a1"),
        record("d1", "before", BASE - 1, "acc1", "a1"),
        record("d2", "other", BASE + 5, "acc1", "a1"),
    ];
    records[1].skill_info_sn = "3".into();
    records[2].account_id = "acc1".into();
    store
        .insert_records(&records, OnConflict::Fail)
        .await
        .expect("insert");

    let got = collect(&store, query("d1", BASE, BASE + 20, None, None)).await;
    assert_eq!(
        keys(&got),
        vec![
            (0, "a".into()),
            (0, "b".into()),
            (10, "c".into()),
            (19, "d".into())
        ]
    );
    assert_eq!(got[0], records[1], "every column round-trips");
    assert_eq!(got[1], records[0]);

    let got = collect(&store, query("d1", BASE, BASE + 20, Some("acc1"), None)).await;
    assert_eq!(keys(&got), vec![(0, "b".into()), (10, "c".into())]);
    let got = collect(&store, query("d1", BASE, BASE + 20, None, Some("a2"))).await;
    assert_eq!(keys(&got), vec![(0, "a".into()), (10, "c".into())]);
    let got = collect(
        &store,
        query("d1", BASE, BASE + 21, Some("acc1"), Some("a1")),
    )
    .await;
    assert_eq!(keys(&got), vec![(0, "b".into()), (20, "end".into())]);
    let got = collect(&store, query("d1", BASE - 1, BASE, None, None)).await;
    assert_eq!(keys(&got), vec![(-1, "before".into())]);
    assert!(
        collect(&store, query("d1", BASE + 21, BASE + 100, None, None))
            .await
            .is_empty()
    );
    assert!(collect(&store, query("d1", BASE, BASE, None, None))
        .await
        .is_empty());
    assert!(
        collect(&store, query("nobody", BASE - 100, BASE + 100, None, None))
            .await
            .is_empty()
    );

    // Many records, inserted out of order, come back in (begin_time, id) order.
    let many: Vec<Record> = (0..3000)
        .rev()
        .map(|i| {
            record(
                "d3",
                &format!("m{:04}", (i * 7) % 3000),
                BASE + 1000 + i / 1000,
                "acc1",
                "a1",
            )
        })
        .collect();
    store
        .insert_records(&many, OnConflict::Fail)
        .await
        .expect("insert many");
    let got = collect(&store, query("d3", BASE, BASE + 10_000, None, None)).await;
    let mut expected = keys(&many);
    expected.sort();
    assert_eq!(keys(&got), expected);

    // A consumer that stops early drops the stream; the store goes on working.
    let first: Vec<_> = store
        .stream_records(query("d3", BASE, BASE + 10_000, None, None))
        .take(5)
        .collect()
        .await;
    assert_eq!(first.len(), 5);
    store.ping().await.expect("ping after an abandoned stream");

    // The stream owns what it needs: it outlives every other handle on the store.
    let stream = store.stream_records(query("d1", BASE, BASE + 20, None, None));
    drop(store);
    let got: Vec<Record> = stream.try_collect().await.expect("stream after drop");
    assert_eq!(got.len(), 4);
}

//! Conformance: the developers part.

use std::sync::Arc;

use super::{at_ms, developer, tz, BASE};
use crate::model::Role;
use crate::store::{Store, StoreError};

pub async fn developers(store: Arc<dyn Store>) {
    assert_eq!(store.developer("dev-b").await.expect("get"), None);
    assert!(store.developers().await.expect("list").is_empty());

    let b = developer("dev-b", &["acc1", "acc2"]);
    store.insert_developer(&b).await.expect("insert b");
    let mut a = developer("dev-a", &[]);
    a.old_secret_enc = None;
    a.old_secret_until = None;
    a.roles = vec![Role::Ingest];
    a.enabled = false;
    a.csv_header = true;
    store.insert_developer(&a).await.expect("insert a");

    assert_eq!(
        store.developer("dev-b").await.expect("get b"),
        Some(b.clone())
    );
    assert_eq!(
        store.developer("dev-a").await.expect("get a"),
        Some(a.clone())
    );
    assert_eq!(
        store.developers().await.expect("list"),
        vec![a.clone(), b.clone()]
    );

    let mut again = developer("dev-b", &["other"]);
    again.name = "impostor".into();
    match store.insert_developer(&again).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.developer("dev-b").await.expect("get b"),
        Some(b.clone()),
        "a conflict changes nothing"
    );

    let mut b2 = b.clone();
    b2.name = "renamed".into();
    b2.secret_enc = vec![42; 48];
    b2.old_secret_enc = Some(b.secret_enc.clone());
    b2.old_secret_until = Some(at_ms(BASE * 1000 + 999));
    b2.timezone = tz("Europe/Paris");
    b2.accounts = vec!["acc0".into(), "acc2".into(), "acc3".into()];
    b2.roles = vec![Role::Export];
    b2.enabled = false;
    b2.csv_header = true;
    store.update_developer(&b2).await.expect("update b");
    assert_eq!(
        store.developer("dev-b").await.expect("get b"),
        Some(b2.clone())
    );

    b2.accounts.clear();
    b2.roles.clear();
    store.update_developer(&b2).await.expect("update b");
    assert_eq!(
        store.developer("dev-b").await.expect("get b"),
        Some(b2.clone())
    );

    match store.update_developer(&developer("dev-missing", &[])).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("expected not found, got {other:?}"),
    }
    assert_eq!(store.developers().await.expect("list"), vec![a, b2]);
}

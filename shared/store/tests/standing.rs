//! A subscriber's standing over the emulator: decided by strength, written on a version, kept in the
//! suppression index; every check reads the profile back from the table.

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::events::StatusChange;
use domain::ports::RecipientStandings;
use domain::standing::{self, StandingState};
use domain::{EmailAddress, SubscriberStatus, SuppressionReason};
use store::schema::{GSI1, GSI1_PK, GSI1_SK};
use store::subscribers::{SUPPRESSED_PARTITION, profile_key, stored_standing};
use store::table::{PageQuery, get_s, s};
use testkit::TestTable;

use SuppressionReason::*;

fn m(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn addr(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

async fn profile(t: &TestTable, email: &EmailAddress) -> store::Item {
    t.table
        .get(profile_key(email.key()), true)
        .await
        .unwrap()
        .expect("a profile")
}

/// The suppression list as the config API lists it: (email key, reason).
async fn suppression_list(t: &TestTable) -> Vec<(String, String)> {
    let page = t
        .table
        .query_page(PageQuery {
            index: Some(GSI1),
            partition_attr: GSI1_PK,
            partition: SUPPRESSED_PARTITION,
            sort_attr: GSI1_SK,
            sort_prefix: None,
            newest_first: false,
            limit: 100,
            cursor: None,
        })
        .await
        .unwrap();
    page.items
        .iter()
        .map(|i| {
            (
                get_s(i, "email_key").unwrap().to_owned(),
                get_s(i, "suppression_reason").unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_weaker_or_older_change_never_lowers_a_standing() {
    let t = TestTable::new().await;
    let a = addr("Ada@Example.com");
    t.table.suppress(&a, HardBounce, m(10)).await.unwrap();
    t.table.suppress(&a, Unsubscribed, m(20)).await.unwrap();
    t.table.reactivate(&a, m(5)).await.unwrap();
    let p = profile(&t, &a).await;
    assert_eq!(get_s(&p, "status"), Some("deactivated"));
    assert_eq!(get_s(&p, "suppression_reason"), Some("HardBounce"));
    assert_eq!(
        get_s(&p, "suppressed_at"),
        Some("2026-06-01T09:10:00.000000Z")
    );
    assert_eq!(
        suppression_list(&t).await,
        vec![("ada@example.com".to_owned(), "HardBounce".to_owned())]
    );
    let standings = t.table.standings(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(
        standings["ada@example.com"].suppression,
        Some(HardBounce),
        "the sender's read agrees"
    );

    // A complaint older than every change but the reactivation, arriving now, makes the person complained.
    t.table.suppress(&a, SpamComplaint, m(6)).await.unwrap();
    let p = profile(&t, &a).await;
    assert_eq!(get_s(&p, "status"), Some("complained"));
    assert_eq!(
        suppression_list(&t).await,
        vec![("ada@example.com".to_owned(), "SpamComplaint".to_owned())]
    );

    // A reactivation at the instant of the unsubscribe lifts the older ones, not the unsubscribe.
    t.table.reactivate(&a, m(20)).await.unwrap();
    let p = profile(&t, &a).await;
    assert_eq!(get_s(&p, "status"), Some("unsubscribed"));
    assert_eq!(get_s(&p, "suppression_reason"), Some("Unsubscribed"));

    t.table.reactivate(&a, m(30)).await.unwrap();
    let p = profile(&t, &a).await;
    assert_eq!(get_s(&p, "status"), Some("active"));
    assert_eq!(get_s(&p, "suppression_reason"), None);
    assert_eq!(get_s(&p, "gsi1pk"), None);
    assert!(suppression_list(&t).await.is_empty(), "off the list");
}

#[tokio::test]
async fn concurrent_changes_of_one_standing_are_all_kept() {
    let t = TestTable::new().await;
    let a = addr("busy@example.com");
    let changes = [
        (StatusChange::Suppress(Unsubscribed), m(40)),
        (StatusChange::Suppress(HardBounce), m(10)),
        (StatusChange::Reactivate, m(20)),
        (StatusChange::Suppress(SpamComplaint), m(15)),
        (StatusChange::Suppress(InactiveRecipient), m(30)),
        (StatusChange::Reactivate, m(35)),
        (StatusChange::Suppress(ManualSuppression), m(5)),
        (StatusChange::Suppress(SpamComplaint), m(25)),
    ];
    let writes = changes
        .iter()
        .map(|(c, at)| t.table.change_standing(&a, *c, *at, |_| Ok(Vec::new())));
    for result in futures::future::join_all(writes).await {
        result.unwrap();
    }
    let want = changes.iter().fold(StandingState::default(), |s, (c, at)| {
        standing::apply(&s, *c, *at)
    });
    let stored = stored_standing(&profile(&t, &a).await).unwrap();
    assert_eq!(stored.state, want, "no change was lost to a concurrent one");
    assert_eq!(want.standing().status, SubscriberStatus::Unsubscribed);
    assert_eq!(
        get_s(&profile(&t, &a).await, "suppression_reason"),
        Some("Unsubscribed")
    );
}

#[tokio::test]
async fn a_profile_written_before_the_levels_were_kept_keeps_its_standing() {
    let t = TestTable::new().await;
    let a = addr("old@example.com");
    let mut item = profile_key(a.key());
    for (k, v) in [
        ("email", "old@example.com"),
        ("email_key", "old@example.com"),
        ("status", "deactivated"),
        ("status_at", "2026-06-01T09:10:00.000000Z"),
        ("suppression_reason", "HardBounce"),
        ("suppressed_at", "2026-06-01T09:10:00.000000Z"),
        ("gsi1pk", SUPPRESSED_PARTITION),
        ("gsi1sk", "HardBounce#old@example.com"),
    ] {
        item.insert(k.into(), s(v));
    }
    t.table
        .transact(vec![t.table.put_op(item).unwrap()])
        .await
        .unwrap();

    t.table.suppress(&a, Unsubscribed, m(20)).await.unwrap();
    t.table.reactivate(&a, m(5)).await.unwrap();
    let p = profile(&t, &a).await;
    assert_eq!(get_s(&p, "status"), Some("deactivated"));
    assert_eq!(get_s(&p, "suppression_reason"), Some("HardBounce"));
    t.table.reactivate(&a, m(10)).await.unwrap();
    assert_eq!(
        get_s(&profile(&t, &a).await, "status"),
        Some("deactivated"),
        "a tie goes to the suppression"
    );
    t.table.reactivate(&a, m(11)).await.unwrap();
    assert_eq!(
        get_s(&profile(&t, &a).await, "status"),
        Some("unsubscribed"),
        "the later unsubscribe was kept"
    );
}

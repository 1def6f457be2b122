//! A subscriber's standing over the emulator: decided by strength, written on a version, kept in the
//! suppression index; every check reads the profile back from the table.

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::events::StatusChange;
use domain::ports::RecipientStandings;
use domain::standing::{self, StandingState};
use domain::{EmailAddress, SubscriberStatus, SuppressionReason};
use store::subscribers::SubscriberProfile;
use testkit::TestTable;

use SuppressionReason::*;

fn m(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn addr(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

async fn profile(t: &TestTable, email: &EmailAddress) -> SubscriberProfile {
    t.table
        .subscriber_profile(email)
        .await
        .unwrap()
        .expect("a profile")
}

/// The suppression list as the config API lists it: (address, reason).
async fn suppression_list(t: &TestTable) -> Vec<(String, SuppressionReason)> {
    let page = t.table.suppressions(None, 100, None).await.unwrap();
    page.items
        .iter()
        .map(|e| (e.email.as_str().to_owned(), e.reason))
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
    assert_eq!(p.email.as_str(), "Ada@Example.com");
    assert_eq!(p.status, SubscriberStatus::Deactivated);
    assert_eq!(p.suppression_reason, Some(HardBounce));
    assert_eq!(p.suppressed_at, Some(m(10)));
    assert_eq!(p.status_at, Some(m(10)));
    assert_eq!(
        suppression_list(&t).await,
        vec![("Ada@Example.com".to_owned(), HardBounce)]
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
    assert_eq!(p.status, SubscriberStatus::Complained);
    assert_eq!(
        suppression_list(&t).await,
        vec![("Ada@Example.com".to_owned(), SpamComplaint)]
    );

    // A reactivation at the instant of the unsubscribe lifts the older ones, not the unsubscribe.
    t.table.reactivate(&a, m(20)).await.unwrap();
    let p = profile(&t, &a).await;
    assert_eq!(p.status, SubscriberStatus::Unsubscribed);
    assert_eq!(p.suppression_reason, Some(Unsubscribed));

    t.table.reactivate(&a, m(30)).await.unwrap();
    let p = profile(&t, &a).await;
    assert_eq!(p.status, SubscriberStatus::Active);
    assert_eq!(p.suppression_reason, None);
    assert_eq!(p.suppressed_at, None);
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
    let writes = changes.iter().map(|(c, at)| async {
        match c {
            StatusChange::Suppress(reason) => t.table.suppress(&a, *reason, *at).await,
            StatusChange::Reactivate => t.table.reactivate(&a, *at).await,
        }
    });
    for result in futures::future::join_all(writes).await {
        result.unwrap();
    }
    let want = changes.iter().fold(StandingState::default(), |s, (c, at)| {
        standing::apply(&s, *c, *at)
    });
    let stored = t.table.stored_standing(&a).await.unwrap();
    assert_eq!(stored.state, want, "no change was lost to a concurrent one");
    assert_eq!(want.standing().status, SubscriberStatus::Unsubscribed);
    assert_eq!(profile(&t, &a).await.suppression_reason, Some(Unsubscribed));
}

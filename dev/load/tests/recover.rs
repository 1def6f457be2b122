//! The recover run, small: 200 jobs through the whole stack with 30% of the webhook posts lost for good
//! (seed 7). After one recovery run every campaign counter and expected suppression matches the
//! simulator's truth; without it they do not (the check can fail).

use load::recover_load::{RecoverLoad, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_lost_for_good_are_recovered_exactly() {
    let report = run(&RecoverLoad::new(200, 0.3, 7)).await;
    report.print();
    assert!(
        report.recorded_before() < report.expected(),
        "no webhook was lost: {}",
        report.last_line()
    );
    assert!(report.recovered() > 0, "{}", report.last_line());
    assert!(
        report.recovery_errors.is_empty(),
        "{:?}",
        report.recovery_errors
    );
    assert_eq!(report.discrepancies(), 0, "see the summary above");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_recovery_the_counters_come_out_short() {
    let report = run(&RecoverLoad {
        recover: false,
        ..RecoverLoad::new(200, 0.3, 7)
    })
    .await;
    report.print();
    assert_eq!(report.recovered(), 0);
    assert!(
        report.discrepancies() > 0,
        "a run that records nothing must show the losses: {}",
        report.last_line()
    );
}

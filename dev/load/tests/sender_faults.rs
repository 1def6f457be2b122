//! A small `load sender-faults` run: 200 jobs through SQS, the poller and the sender while Postmark,
//! DynamoDB and kills strike; nothing may be sent twice or lost, and the counters must be exact.

use load::sender_faults::{SenderFaults, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_under_faults_are_sent_once_and_none_is_lost() {
    let settings = SenderFaults::new(200, 7);
    let r = run(&settings).await;
    println!(
        "{} invocations ({} failed), {:.1} s, statuses {:?}, Postmark faults {:?}, DynamoDB faults {:?}",
        r.invocations,
        r.failed_invocations,
        r.elapsed.as_secs_f64(),
        r.statuses,
        r.postmark_faults,
        r.dynamo_fired
    );
    for k in &r.kills {
        println!("{k:?}");
    }
    println!("{}", r.last_line());
    assert!(
        r.finished,
        "the queue did not empty in time: {:?}",
        r.statuses
    );
    assert_eq!(r.duplicates, 0, "{:?}", r.wrong);
    assert_eq!(r.lost, 0, "{:?}", r.wrong);
    assert_eq!(
        r.counters_off, 0,
        "counters {:?} against {:?}",
        r.counters, r.statuses
    );
    assert!(r.wrong.is_empty(), "{:?}", r.wrong);
    assert_eq!(r.sent + r.failed + r.skipped, r.jobs, "{:?}", r.statuses);
    assert!(r.failed > 0 && r.skipped > 0, "{:?}", r.statuses);
    assert!(r.kills.len() >= 3, "kills that landed: {:?}", r.kills);
    assert!(
        r.dynamo_fired.values().sum::<u64>() > 0,
        "no DynamoDB fault fired"
    );
}

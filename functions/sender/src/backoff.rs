//! When a job handed back to SQS comes again: retryable failures wait longer at every receive
//! (exponential, with jitter, up to a cap), so that a long Postmark outage costs a few receives an hour
//! instead of moving the queue into the dead-letter queue; the wait is set on the message itself
//! (ChangeMessageVisibility).

use std::time::Duration;

use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use tracing::warn;

/// SQS's longest visibility timeout.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

/// The retry schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first receive.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    /// 60 s doubling to 1 h: with the queue's 60 receives, more than a day (see [`Backoff::rides_out`]).
    fn default() -> Self {
        Self {
            base: Duration::from_secs(60),
            max: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The wait before receive `receive_count + 1`, before jitter: `base × 2^(receive_count − 1)`, capped.
    pub fn ceiling(&self, receive_count: u32) -> Duration {
        let doublings = receive_count.saturating_sub(1).min(30);
        self.base
            .saturating_mul(1u32 << doublings)
            .min(self.max)
            .min(MAX_VISIBILITY)
    }

    /// The wait with jitter: uniform between half the ceiling and the ceiling, so that jobs that failed
    /// together do not come back together. `unit` is a draw in [0, 1).
    pub fn delay(&self, receive_count: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(receive_count);
        ceiling.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }

    /// The least total time a message is retried before `max_receives` receives are spent: how long an
    /// outage the queue rides out before anything reaches the dead-letter queue.
    pub fn rides_out(&self, max_receives: u32) -> Duration {
        (1..max_receives)
            .map(|n| self.ceiling(n) / 2)
            .sum::<Duration>()
    }
}

/// A uniform draw in [0, 1) (from the process's random source, through UUIDv4's 122 random bits).
pub fn unit() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() >> 75;
    bits as f64 / (1u64 << 53) as f64
}

/// The queue URL of an SQS ARN (`arn:aws:sqs:{region}:{account}:{name}`).
pub fn queue_url_of_arn(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "sqs", region, account, name] if !name.is_empty() => {
            let domain = if partition.starts_with("aws-cn") {
                "amazonaws.com.cn"
            } else {
                "amazonaws.com"
            };
            Some(format!("https://sqs.{region}.{domain}/{account}/{name}"))
        }
        _ => None,
    }
}

/// Sets how long each handed-back message stays invisible (ten per request). A message whose wait could
/// not be set comes back after the queue's visibility timeout instead: logged, nothing lost.
pub async fn set_visibility(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    waits: &[(String, Duration)],
) {
    for chunk in waits.chunks(store::sqs::SQS_BATCH_LIMIT) {
        let entries: Vec<_> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, (receipt, wait))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(
                        i32::try_from(wait.min(&MAX_VISIBILITY).as_secs()).unwrap_or(i32::MAX),
                    )
                    .build()
                    .ok()
            })
            .collect();
        match sqs
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) if out.failed.is_empty() => {}
            Ok(out) => warn!(
                failed = out.failed.len(),
                "some handed-back messages keep the queue's visibility timeout"
            ),
            Err(e) => warn!(error = ?e, "handed-back messages keep the queue's visibility timeout"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: Backoff = Backoff {
        base: Duration::from_secs(60),
        max: Duration::from_secs(3600),
    };

    #[test]
    fn the_default_is_the_documented_schedule() {
        assert_eq!(Backoff::default(), SCHEDULE);
    }

    #[test]
    fn waits_double_up_to_the_cap() {
        let waits: Vec<u64> = (1..=9).map(|n| SCHEDULE.ceiling(n).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(SCHEDULE.ceiling(0).as_secs(), 60);
        assert_eq!(SCHEDULE.ceiling(u32::MAX).as_secs(), 3600);
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole() {
        for n in 1..10 {
            let c = SCHEDULE.ceiling(n);
            assert_eq!(SCHEDULE.delay(n, 0.0), c / 2);
            assert_eq!(SCHEDULE.delay(n, 1.0), c);
            let d = SCHEDULE.delay(n, 0.3);
            assert!(d >= c / 2 && d <= c);
        }
    }

    #[test]
    fn the_template_schedule_rides_out_a_day() {
        // 60 s doubling to 1 h, with the queue's maxReceiveCount of 60 (template.yaml).
        assert!(SCHEDULE.rides_out(60) >= Duration::from_secs(24 * 3600));
        assert!(SCHEDULE.rides_out(5) < Duration::from_secs(3600));
    }

    #[test]
    fn queue_urls_from_arns() {
        assert_eq!(
            queue_url_of_arn("arn:aws:sqs:eu-west-1:123456789012:send-jobs").as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/123456789012/send-jobs")
        );
        assert_eq!(queue_url_of_arn("arn:aws:sns:eu-west-1:1:x"), None);
        assert_eq!(queue_url_of_arn(""), None);
    }
}

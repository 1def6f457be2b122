//! Webhook payload parsing and classification, and the whole event logic for one event without I/O:
//! parse, map to the domain event (dedup key, trace, automation check), plan, and count an engagement.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domain::engagement::{self, EngagementCounts};
use domain::events::Source;

const FIXTURES: &[(&str, &str)] = &[
    (
        "delivery",
        include_str!("../../shared/postmark/tests/fixtures/webhooks/symfony_delivery.json"),
    ),
    (
        "bounce",
        include_str!("../../shared/postmark/tests/fixtures/webhooks/symfony_bounce.json"),
    ),
    (
        "spam_complaint",
        include_str!("../../shared/postmark/tests/fixtures/webhooks/symfony_spam_complaint.json"),
    ),
    (
        "open",
        include_str!("../../shared/postmark/tests/fixtures/webhooks/symfony_open.json"),
    ),
    (
        "click",
        include_str!("../../shared/postmark/tests/fixtures/webhooks/symfony_click.json"),
    ),
    (
        "subscription_change",
        include_str!(
            "../../shared/postmark/tests/fixtures/webhooks/symfony_subscription_change.json"
        ),
    ),
];

fn parse_and_classify(c: &mut Criterion) {
    let mut group = c.benchmark_group("webhook_parse_classify");
    for (name, body) in FIXTURES {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| {
                let event = postmark::WebhookEvent::from_slice(black_box(body.as_bytes())).unwrap();
                black_box((
                    event.kind(),
                    event.bounce_class(),
                    event.recipient().map(str::len),
                ))
            })
        });
    }
    group.finish();
}

fn event_logic(c: &mut Criterion) {
    let mut group = c.benchmark_group("webhook_event_logic");
    for (name, body) in FIXTURES {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let webhook =
                    postmark::WebhookEvent::from_slice(black_box(body.as_bytes())).unwrap();
                let event =
                    webhook::mapping::to_event(&webhook, Some("trace-1"), body.as_bytes(), None);
                let plan = domain::events::plan(&event);
                let counted = engagement::count(
                    &EngagementCounts::default(),
                    Source::Postmark,
                    event.automated.is_none(),
                );
                black_box((plan, counted, event.dedup_key))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse_and_classify, event_logic);
criterion_main!(benches);

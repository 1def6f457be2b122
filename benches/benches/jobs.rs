//! Job validation: reading and checking a send job as the sender does for each SQS message.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domain::jobs::SendJob;

const JOBS: &[(&str, &str)] = &[
    (
        "broadcast",
        include_str!("../../events/sender/jobs/broadcast.json"),
    ),
    (
        "transactional",
        include_str!("../../events/sender/jobs/transactional.json"),
    ),
    (
        "transactional_minimal",
        include_str!("../../events/sender/jobs/transactional-minimal.json"),
    ),
];

fn validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("job_validation");
    for (name, body) in JOBS {
        assert!(
            SendJob::parse(body, Some("msg-1")).is_ok(),
            "{name} is valid"
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| black_box(SendJob::parse(black_box(body), Some("msg-1")).is_ok()))
        });
    }
    // A refused job: the error names the field (a misspelt one here).
    let invalid = r#"{"version":1,"id":"typo-1","email_type":"transactional","from":"a@example.com","to":"b@example.org","subject":"Hi","text_body":"Hi","html_bdoy":"<p>Hi</p>"}"#;
    assert!(SendJob::parse(invalid, None).is_err());
    group.bench_function("invalid_misspelt_field", |b| {
        b.iter(|| black_box(SendJob::parse(black_box(invalid), None).is_err()))
    });
    group.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);

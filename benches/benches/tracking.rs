//! Signing and verifying native tracking tokens.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use domain::JobId;
use domain::tracking::{TokenSigner, TrackingTarget};

fn tokens(c: &mut Criterion) {
    let signer = TokenSigner::new(b"a 32-byte key for the benchmarks!");
    let click = TrackingTarget::Click {
        job: JobId::parse("job-0123456789abcdef").unwrap(),
        url: "https://shop.example.com/collections/winter-sale?utm_source=newsletter&utm_medium=email".into(),
    };
    let token = signer.sign(&click).unwrap();
    c.bench_function("tracking_token_sign_click", |b| {
        b.iter(|| black_box(signer.sign(black_box(&click)).unwrap()))
    });
    c.bench_function("tracking_token_verify_click", |b| {
        b.iter(|| black_box(signer.verify(black_box(&token)).unwrap()))
    });
    let mut forged = token.clone().into_bytes();
    forged[5] ^= 1;
    let forged = String::from_utf8(forged).unwrap_or_default();
    c.bench_function("tracking_token_verify_forged", |b| {
        b.iter(|| black_box(signer.verify(black_box(&forged)).is_err()))
    });
}

criterion_group!(benches, tokens);
criterion_main!(benches);

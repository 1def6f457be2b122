//! Native tracking on a realistic newsletter (about 100 KB of HTML, 200 links), with the tokens signed as
//! the sender signs them: one click token per link and the open pixel.

use std::fmt::Write;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domain::JobId;
use domain::rewrite::{ClickUrl, insert_tracking};
use domain::tracking::{TokenSigner, TrackingTarget};

/// A newsletter built the same way every run: header, Outlook conditional comment, 40 article blocks of
/// five links each (product, image, author, share, a `mailto:` that stays), a style block and a footer.
fn newsletter() -> String {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Spring at the Corner Bookshop</title>\n\
         <style>a{color:#8a3b12}.btn{padding:12px 24px;border-radius:4px}@media (max-width:600px){.col{width:100%!important}}</style>\n\
         </head><body style=\"margin:0;background:#f4f1ec\">\n\
         <!--[if mso]><table role=\"presentation\" width=\"600\"><tr><td><a href=\"https://bookshop.example.com/outlook\">x</a><![endif]-->\n",
    );
    let mut links = 0;
    let mut article = 0;
    while links < 195 {
        let _ = write!(
            html,
            "<table role=\"presentation\" class=\"col\" width=\"600\" cellpadding=\"0\" cellspacing=\"0\" style=\"background:#ffffff;margin:0 auto 16px auto;border-collapse:collapse\">\n\
             <tr><td style=\"padding:24px 32px 8px 32px;font-family:Georgia,serif;font-size:22px;line-height:28px;color:#222\">\n\
             <a href=\"https://bookshop.example.com/books/{article}?utm_source=newsletter&amp;utm_medium=email&amp;utm_campaign=spring-2026&amp;utm_content=title\" style=\"color:#222;text-decoration:none\">Title number {article}: a story of spring</a></td></tr>\n\
             <tr><td style=\"padding:0 32px\"><a href=\"https://bookshop.example.com/books/{article}?utm_source=newsletter&amp;utm_content=cover\"><img src=\"https://cdn.bookshop.example.com/covers/{article}.jpg\" width=\"536\" alt=\"Cover of title {article}\" style=\"display:block;border:0;width:100%;height:auto\" /></a></td></tr>\n\
             <tr><td style=\"padding:16px 32px;font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:23px;color:#444\">\n\
             <p style=\"margin:0 0 12px 0\">A quiet, funny and generous novel about a family that opens a bookshop in a town that did not ask for one. \
             Our booksellers read it in one sitting and have been pressing it into customers' hands ever since; it is the kind of book that makes you want to call an old friend. \
             Written by <a href=\"https://bookshop.example.com/authors/{article}?utm_source=newsletter\" style=\"color:#8a3b12\">author {article}</a>, \
             who will be signing copies at the shop in May.</p>\n\
             <p style=\"margin:0 0 12px 0\">Price &pound;{price}.99 &middot; 320 pages &middot; hardback. Free delivery on orders over &pound;25.</p>\n\
             <p style=\"margin:0\"><a href=\"https://bookshop.example.com/share?book={article}&amp;via=newsletter\" style=\"color:#8a3b12\">Share with a friend</a> &middot; \
             <a href=\"mailto:hello@example.com?subject=Title%20{article}\" style=\"color:#8a3b12\">Ask us about it</a> &middot; \
             <a href=\"https://bookshop.example.com/cart/add/{article}?utm_source=newsletter&amp;utm_content=button\" class=\"btn\" style=\"background:#8a3b12;color:#fff;text-decoration:none\">Add to basket</a></p>\n\
             </td></tr></table>\n",
            price = 8 + article % 12,
        );
        links += 5;
        article += 1;
    }
    while links < 200 {
        let _ = writeln!(
            html,
            "<p style=\"font-size:12px;color:#777;text-align:center\"><a href=\"https://bookshop.example.com/footer/{links}\" style=\"color:#777\">Footer link {links}</a></p>"
        );
        links += 1;
    }
    html.push_str(
        "<p style=\"font-size:12px;color:#777;text-align:center\">The Corner Bookshop, 1 High Street, Oxford.<br>\
         <a href=\"{{unsubscribe_url}}\" style=\"color:#777\">Unsubscribe</a></p>\n</body></html>\n",
    );
    // Pad with article text to about 100 KB, keeping the link count.
    while html.len() < 100_000 {
        let at = html.rfind("</body>").unwrap_or(html.len());
        html.insert_str(
            at,
            "<p style=\"font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:23px;color:#444;padding:0 32px\">\
             From the shop floor: this week we rearranged the poetry shelves, found a first edition behind the radiator and \
             argued (politely) about whether a cookbook can be a novel. Come and tell us what you think.</p>\n",
        );
    }
    html
}

fn tracking(c: &mut Criterion) {
    let html = newsletter();
    let links = html.matches("<a href=\"http").count();
    assert!((190..=210).contains(&links), "{links} links");
    let signer = TokenSigner::new(b"a 32-byte key for the benchmarks!");
    let job = JobId::parse("b-2026-spring:sub-1042").unwrap();
    let base = "https://track.example.com/prod";

    let mut group = c.benchmark_group("native_tracking_newsletter");
    group.throughput(Throughput::Bytes(html.len() as u64));
    group.bench_function("scan_only", |b| {
        b.iter(|| black_box(insert_tracking(black_box(&html), None, None).html.len()))
    });
    group.bench_function("rewrite_unsigned", |b| {
        b.iter(|| {
            let mut click = |url: &str| Some(format!("{base}/t/c/{}", url.len()));
            let click: Option<ClickUrl<'_>> = Some(&mut click);
            black_box(
                insert_tracking(black_box(&html), click, Some(base))
                    .html
                    .len(),
            )
        })
    });
    group.bench_function("rewrite_signed_200_links", |b| {
        b.iter(|| {
            let mut click = |url: &str| {
                let target = TrackingTarget::Click {
                    job: job.clone(),
                    url: url.to_owned(),
                };
                signer.sign(&target).ok().map(|t| format!("{base}/t/c/{t}"))
            };
            let click: Option<ClickUrl<'_>> = Some(&mut click);
            let pixel = signer
                .sign(&TrackingTarget::Open { job: job.clone() })
                .ok()
                .map(|t| format!("{base}/t/o/{t}"));
            black_box(
                insert_tracking(black_box(&html), click, pixel.as_deref())
                    .html
                    .len(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, tracking);
criterion_main!(benches);

//! Per-event cost of the ingest pipeline on a realistic ~1 KB `llm_call`
//! event: splitting a 1000-event array body (reported per event), parsing
//! and validating, preparing under each content policy, and sealing.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use trail_core::batch::split_body;
use trail_core::event::parse_event;
use trail_core::policy::ContentPolicy;
use trail_core::record::prepare;
use uuid::Uuid;

fn sample_event(i: usize) -> Value {
    json!({
        "id": Uuid::from_u128(0x0190_a0b1_c2d3_7e4f_8a9b_0000_0000_0000 + i as u128).to_string(),
        "type": "llm_call",
        "name": "chat.completions",
        "started_at": "2026-11-23T14:34:04.123456Z",
        "ended_at": "2026-11-23T14:34:05.654321Z",
        "user_id": "user-1842",
        "user_email": "jane.doe@example.com",
        "agent_id": "support-agent",
        "project_id": "helpdesk",
        "session_id": "sess-7f3a9c",
        "task_id": "task-1234",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "transport": "sdk",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 412,
        "output_tokens": 96,
        "input": {
            "messages": [
                {"role": "system", "content": "You are a helpful support assistant for an online store. Answer briefly and politely."},
                {"role": "user", "content": "Hi, my order #48213 has not arrived yet. It was supposed to be delivered on Monday. Can you check the status?"}
            ],
            "temperature": 0.2,
            "max_tokens": 256
        },
        "output": "I'm sorry for the delay! Order #48213 left our warehouse on Friday and is currently with the carrier. The latest scan shows it at your local depot, so delivery should happen within one business day.",
        "input_summary": "Customer asks about late order #48213",
        "output_summary": "Order is at local depot, delivery expected within a day",
        "document_ids": ["order-48213"],
        "metadata": {"env": "prod", "region": "eu-west-1", "sdk_version": "1.4.2", "retry": 0, "latency_ms": 1530.2}
    })
}

fn bench(c: &mut Criterion) {
    let event = sample_event(0);
    let one = serde_json::to_vec(&event).unwrap_or_default();
    let batch: Vec<Value> = (0..1000).map(sample_event).collect();
    let body = serde_json::to_vec(&batch).unwrap_or_default();
    println!(
        "event size: {} bytes; batch body: {} bytes",
        one.len(),
        body.len()
    );

    let mut g = c.benchmark_group("per_event");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));

    g.bench_function("split_body_1000/1000", |b| {
        // One iteration splits the whole body; divide by 1000 below via
        // iter_custom so the figure is per event.
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            let mut n = 0;
            while n < iters {
                black_box(split_body(black_box(&body), false).map(|v| v.len()).ok());
                n += 1000;
            }
            start.elapsed()
        })
    });
    g.bench_function("parse_event", |b| {
        b.iter_batched(
            || event.clone(),
            |v| black_box(parse_event(v).ok()),
            criterion::BatchSize::SmallInput,
        )
    });
    let parsed = match parse_event(event.clone()) {
        Ok(e) => e,
        Err(errs) => panic!("sample event invalid: {errs:?}"),
    };
    for policy in ContentPolicy::ALL {
        g.bench_function(format!("prepare_{policy}"), |b| {
            b.iter_batched(
                || parsed.clone(),
                |e| black_box(prepare(e, *policy, [7; 32], Uuid::nil())),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    let prepared = prepare(parsed.clone(), ContentPolicy::Hash, [7; 32], Uuid::nil());
    let prose = serde_json::to_string(&event["input"])
        .unwrap_or_default()
        .repeat(2);
    g.bench_function("redact_str_clean_1kb", |b| {
        b.iter(|| black_box(trail_core::redact::redact_str(black_box(&prose)).len()))
    });
    g.bench_function("seal", |b| {
        b.iter(|| {
            black_box(prepared.seal("tenant-acme", black_box(123_456), 1_763_908_444_000_000))
        })
    });
    g.bench_function("pipeline_hash_policy", |b| {
        b.iter_batched(
            || event.clone(),
            |v| {
                let e = parse_event(v).ok()?;
                let p = prepare(e, ContentPolicy::Hash, [7; 32], Uuid::nil());
                Some(black_box(p.seal(
                    "tenant-acme",
                    123_456,
                    1_763_908_444_000_000,
                )))
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

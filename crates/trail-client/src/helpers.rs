//! Wrappers that record one event per tool call and per outer LLM call,
//! and hand the wrapped result back unchanged.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::Stream;
use serde::Serialize;
use serde_json::{json, Map, Value};
use trail_core::hashing::{content_hash, content_size, to_hex};
use trail_core::time::format_rfc3339;

use crate::Recorder;

/// Content larger than this is sent as its hash and size only (an event
/// may be at most 256 KiB).
const MAX_INLINE_BYTES: u64 = 64 * 1024;

/// Puts `value` in `event` as `field` (`input` / `output`), or only its
/// hash and size when it is large; the server hashes inline content itself
/// and its content policy decides what is kept.
fn put_content(event: &mut Map<String, Value>, field: &str, value: Value) {
    if value.is_null() {
        return;
    }
    let size = content_size(&value);
    if size > MAX_INLINE_BYTES {
        event.insert(
            format!("{field}_hash"),
            Value::String(to_hex(&content_hash(&value))),
        );
        event.insert(format!("{field}_bytes"), json!(size));
    } else {
        event.insert(field.to_owned(), value);
    }
}

fn truncate(text: String) -> String {
    const MAX: usize = 4000;
    if text.len() <= MAX {
        return text;
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Start time and clock of one wrapped call.
struct Started {
    at_us: i64,
    clock: Instant,
}

impl Started {
    fn now() -> Started {
        Started {
            at_us: trail_store::now_micros(),
            clock: Instant::now(),
        }
    }

    fn fill(&self, event: &mut Map<String, Value>) {
        event.insert("started_at".into(), json!(format_rfc3339(self.at_us)));
        event.insert(
            "duration_ms".into(),
            json!(self.clock.elapsed().as_millis() as u64),
        );
    }
}

fn finish<T: Serialize, E: Display>(event: &mut Map<String, Value>, result: &Result<T, E>) {
    match result {
        Ok(output) => {
            event.insert("status".into(), json!("ok"));
            put_content(
                event,
                "output",
                serde_json::to_value(output).unwrap_or(Value::Null),
            );
        }
        Err(error) => {
            event.insert("status".into(), json!("error"));
            event.insert("error".into(), json!(truncate(error.to_string())));
        }
    }
}

impl Recorder {
    /// Runs a tool call and records it as a `tool_call` event (start time,
    /// duration, arguments, output or error), then returns its result
    /// unchanged.
    pub async fn tool_call<T, E, F>(&self, name: &str, args: Value, call: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        T: Serialize,
        E: Display,
    {
        if !self.is_enabled() {
            return call.await;
        }
        let started = Started::now();
        let result = call.await;
        let mut event = Map::new();
        event.insert("type".into(), json!("tool_call"));
        event.insert("name".into(), json!(name));
        started.fill(&mut event);
        put_content(&mut event, "input", args);
        finish(&mut event, &result);
        self.record(Value::Object(event));
        result
    }

    /// Runs one outer LLM call and records it as an `llm_call` event (named
    /// `chat`; provider, model, request, response or error), then returns
    /// its result unchanged. Token counts are read from an OpenAI-style
    /// `usage` object of the response when there is one.
    pub async fn llm_call<T, E, F>(
        &self,
        provider: &str,
        model: &str,
        request: Value,
        call: F,
    ) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        T: Serialize,
        E: Display,
    {
        if !self.is_enabled() {
            return call.await;
        }
        let started = Started::now();
        let result = call.await;
        let mut event = llm_event(provider, model);
        started.fill(&mut event);
        put_content(&mut event, "input", request);
        if let Ok(output) = &result {
            if let Ok(value) = serde_json::to_value(output) {
                usage(&mut event, &value);
            }
        }
        finish(&mut event, &result);
        self.record(Value::Object(event));
        result
    }

    /// Wraps a streamed LLM answer: the items pass through unchanged, and
    /// one `llm_call` event is recorded when the stream ends, fails (its
    /// first `Err`), or is dropped before its end.
    pub fn llm_stream<S, T, E>(
        &self,
        provider: &str,
        model: &str,
        request: Value,
        stream: S,
    ) -> LlmStream<S>
    where
        S: Stream<Item = Result<T, E>> + Unpin,
        T: Serialize,
        E: Display,
    {
        let mut event = llm_event(provider, model);
        if self.is_enabled() {
            put_content(&mut event, "input", request);
        }
        LlmStream {
            inner: stream,
            recorder: self.clone(),
            started: Started::now(),
            event,
            chunks: Vec::new(),
            done: !self.is_enabled(),
        }
    }
}

fn llm_event(provider: &str, model: &str) -> Map<String, Value> {
    let mut event = Map::new();
    event.insert("type".into(), json!("llm_call"));
    event.insert("name".into(), json!("chat"));
    event.insert("provider".into(), json!(provider));
    event.insert("model".into(), json!(model));
    event
}

fn usage(event: &mut Map<String, Value>, output: &Value) {
    let usage = &output["usage"];
    for (from, to) in [
        ("prompt_tokens", "input_tokens"),
        ("input_tokens", "input_tokens"),
        ("completion_tokens", "output_tokens"),
        ("output_tokens", "output_tokens"),
    ] {
        if let Some(n) = usage[from].as_u64() {
            event.insert(to.into(), json!(n));
        }
    }
}

/// A stream wrapped by [`Recorder::llm_stream`].
pub struct LlmStream<S> {
    inner: S,
    recorder: Recorder,
    started: Started,
    event: Map<String, Value>,
    chunks: Vec<Value>,
    done: bool,
}

impl<S> LlmStream<S> {
    fn record(&mut self, status: Result<(), String>) {
        if self.done {
            return;
        }
        self.done = true;
        let mut event = std::mem::take(&mut self.event);
        self.started.fill(&mut event);
        event.insert("metadata".into(), json!({"chunks": self.chunks.len()}));
        put_content(
            &mut event,
            "output",
            Value::Array(std::mem::take(&mut self.chunks)),
        );
        match status {
            Ok(()) => {
                event.insert("status".into(), json!("ok"));
            }
            Err(error) => {
                event.insert("status".into(), json!("error"));
                event.insert("error".into(), json!(truncate(error)));
            }
        }
        self.recorder.record(Value::Object(event));
    }
}

impl<S, T, E> Stream for LlmStream<S>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    T: Serialize,
    E: Display,
{
    type Item = Result<T, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let item = Pin::new(&mut this.inner).poll_next(cx);
        match &item {
            Poll::Ready(Some(Ok(chunk))) => {
                if !this.done {
                    if let Ok(value) = serde_json::to_value(chunk) {
                        usage(&mut this.event, &value);
                        this.chunks.push(value);
                    }
                }
            }
            Poll::Ready(Some(Err(error))) => this.record(Err(error.to_string())),
            Poll::Ready(None) => this.record(Ok(())),
            Poll::Pending => {}
        }
        item
    }
}

impl<S> Drop for LlmStream<S> {
    fn drop(&mut self) {
        self.record(Err("the stream was dropped before its end".into()));
    }
}

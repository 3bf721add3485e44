//! A small JSON-over-HTTP client for the commands that talk to a running
//! server; turns problem+json answers into readable errors.

use anyhow::{anyhow, Context};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A server and the key to use with it.
pub struct Client {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for `url` with an API key.
    pub fn new(url: &str, key: &str) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            base: url.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            http,
        })
    }

    /// Sends a request and returns the JSON answer, or the problem as an error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .query(query);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let bytes = response.bytes().await.context("reading the answer")?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).context("the server answered invalid JSON");
        }
        Err(problem(status, &bytes))
    }

    /// The underlying HTTP client (for the benchmark's raw posts).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The API key.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Formats a problem+json answer.
pub fn problem(status: StatusCode, bytes: &[u8]) -> anyhow::Error {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return anyhow!("{status}: {}", String::from_utf8_lossy(bytes));
    };
    let mut message = format!(
        "{status}: {}",
        value["detail"].as_str().unwrap_or("(no detail)")
    );
    if let Some(errors) = value["errors"].as_array() {
        for error in errors.iter().take(20) {
            message.push_str(&format!(
                "\n  {}: {}",
                error["field"].as_str().unwrap_or(""),
                error["message"].as_str().unwrap_or("")
            ));
        }
    }
    anyhow!(message)
}

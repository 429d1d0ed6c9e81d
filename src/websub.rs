//! WebSub, publisher side: after a publish that changed feeds, tell the configured hub
//! (`[publish] websub_hub`) which topic URLs to fetch, with the de-facto standard
//! publish ping `hub.mode=publish&hub.url=<topic>` (one form-encoded POST per topic).
//! The feeds themselves carry `rel="hub"` (see `render`). A failed ping is logged and
//! reported, never fatal: subscribers still poll. reqwest types stay in this file.

use std::time::Duration;

use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum WebSubError {
    #[error("WebSub hub {hub}: ping for {topic} failed: {message}")]
    Request {
        hub: Url,
        topic: Url,
        message: String,
    },
    #[error("WebSub hub {hub} answered HTTP {status} to the ping for {topic}")]
    Status { hub: Url, topic: Url, status: u16 },
}

/// A hub we announce changed topics to.
pub struct Hub {
    url: Url,
    client: reqwest::Client,
}

impl Hub {
    pub fn new(url: Url, user_agent: &str) -> Hub {
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .expect("a client with these settings always builds");
        Hub { url, client }
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The form body of a publish ping for `topic`.
    pub fn ping_body(topic: &Url) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("hub.mode", "publish")
            .append_pair("hub.url", topic.as_str())
            .finish()
    }

    /// Pings the hub for each topic; returns the failures.
    pub async fn ping(&self, topics: &[Url]) -> Vec<WebSubError> {
        let mut failures = Vec::new();
        for topic in topics {
            let res = self
                .client
                .post(self.url.clone())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(Hub::ping_body(topic))
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(hub = %self.url, %topic, status = r.status().as_u16(), "WebSub hub notified");
                }
                Ok(r) => failures.push(WebSubError::Status {
                    hub: self.url.clone(),
                    topic: topic.clone(),
                    status: r.status().as_u16(),
                }),
                Err(e) => failures.push(WebSubError::Request {
                    hub: self.url.clone(),
                    topic: topic.clone(),
                    message: e.to_string(),
                }),
            }
        }
        for f in &failures {
            tracing::warn!("{f}");
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_body_is_form_encoded() {
        let t = Url::parse("https://www.defus.de/aktuelles/atom.xml?a=b&c").unwrap();
        assert_eq!(
            Hub::ping_body(&t),
            "hub.mode=publish&hub.url=https%3A%2F%2Fwww.defus.de%2Faktuelles%2Fatom.xml%3Fa%3Db%26c"
        );
    }
}

//! Where the log service is. Usually a fixed URL. With `--logger-url
//! http://HOST:0` and `--create-logger`, the port Docker picked when it
//! published the container gestor created: the daemon learns it once the
//! container is up, and learns it again when the shipper cannot connect (a
//! restarted container may be given another port).

use std::sync::Arc;
use tokio::sync::{watch, Notify};

/// The shipper's view: the current base URL (no trailing `/`), if known.
#[derive(Debug, Clone)]
pub struct LoggerEndpoint {
    url: watch::Receiver<Option<String>>,
    unreachable: Arc<Notify>,
}

/// The daemon's side of a learnt endpoint.
#[derive(Debug)]
pub struct EndpointUpdater {
    url: watch::Sender<Option<String>>,
    unreachable: Arc<Notify>,
}

impl LoggerEndpoint {
    /// An address that never changes.
    pub fn fixed(url: &str) -> LoggerEndpoint {
        let (tx, rx) = watch::channel(Some(url.trim_end_matches('/').to_string()));
        // Nobody changes a fixed URL: the sender may go.
        drop(tx);
        LoggerEndpoint {
            url: rx,
            unreachable: Arc::new(Notify::new()),
        }
    }

    /// An address learnt later through the returned updater.
    pub fn learnt() -> (EndpointUpdater, LoggerEndpoint) {
        let (tx, rx) = watch::channel(None);
        let unreachable = Arc::new(Notify::new());
        (
            EndpointUpdater {
                url: tx,
                unreachable: unreachable.clone(),
            },
            LoggerEndpoint {
                url: rx,
                unreachable,
            },
        )
    }

    pub fn current(&self) -> Option<String> {
        self.url.borrow().clone()
    }

    /// The shipper could not connect: the address may have changed.
    pub fn report_unreachable(&self) {
        self.unreachable.notify_one();
    }
}

impl EndpointUpdater {
    pub fn set(&self, url: &str) {
        let url = url.trim_end_matches('/').to_string();
        self.url.send_if_modified(|current| {
            let changed = current.as_deref() != Some(url.as_str());
            if changed {
                tracing::info!(url = %url, "log service address");
                *current = Some(url);
            }
            changed
        });
    }

    /// Waits until the shipper reports the address unreachable.
    pub async fn unreachable(&self) {
        self.unreachable.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_endpoint_keeps_its_url() {
        let e = LoggerEndpoint::fixed("http://127.0.0.1:8000/");
        assert_eq!(e.current().as_deref(), Some("http://127.0.0.1:8000"));
        e.report_unreachable();
        assert_eq!(e.current().as_deref(), Some("http://127.0.0.1:8000"));
    }

    #[tokio::test]
    async fn a_learnt_endpoint_is_unknown_until_set_and_hears_of_failures() {
        let (updater, e) = LoggerEndpoint::learnt();
        assert_eq!(e.current(), None);
        updater.set("http://127.0.0.1:41000");
        assert_eq!(e.current().as_deref(), Some("http://127.0.0.1:41000"));
        e.report_unreachable();
        // The notification is kept until the updater waits for it.
        tokio::time::timeout(std::time::Duration::from_secs(1), updater.unreachable())
            .await
            .expect("the report reaches the updater");
        updater.set("http://127.0.0.1:41001");
        assert_eq!(e.current().as_deref(), Some("http://127.0.0.1:41001"));
    }
}

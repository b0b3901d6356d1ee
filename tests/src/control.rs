//! The saga control `serve` installs (bin/src/cmd/serve.rs), over a test's store (known once
//! the app is spawned): what `POST /api/v1/moodle/retry` and `GET /api/v1/status` go through.

use std::sync::{Arc, OnceLock};

/// Install with `TestApp::spawn_custom(.., |s| s.with_saga(control.clone()))`, then
/// [`Control::bind`] the app's store.
#[derive(Default, Clone)]
pub struct Control(Arc<OnceLock<store::Store>>);

impl Control {
    pub fn new() -> Arc<Control> {
        Arc::new(Control::default())
    }

    /// The store the control works on.
    pub fn bind(&self, store: &store::Store) {
        let _ = self.0.set(store.clone());
    }

    fn store(&self) -> Result<&store::Store, String> {
        self.0.get().ok_or_else(|| "no store yet".to_string())
    }
}

impl api::SagaControl for Control {
    fn retry<'a>(&'a self, id: &'a str, by: &'a str) -> api::BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            saga::retry(self.store()?, id, by)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn retry_parked<'a>(
        &'a self,
        code: Option<&'a str>,
        by: &'a str,
    ) -> api::BoxFuture<'a, Result<Vec<String>, String>> {
        Box::pin(async move {
            saga::retry_parked(self.store()?, code, by)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn retry_participant<'a>(
        &'a self,
        event_id: &'a str,
        participant_id: &'a str,
        by: &'a str,
    ) -> api::BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            saga::retry_participant(self.store()?, event_id, participant_id, by)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn status(&self) -> api::BoxFuture<'_, Result<serde_json::Value, String>> {
        Box::pin(async move {
            let status = saga::status(self.store()?)
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_value(status).map_err(|e| e.to_string())
        })
    }
}

//! Exporting the log as JSON lines.

use cqrs_es::Aggregate;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::StoreError;
use crate::model::LogQuery;
use crate::read::MAX_PAGE;
use crate::store::Store;

/// Rows per page while exporting.
const EXPORT_PAGE: usize = 1000;

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportSummary {
    /// Lines written.
    pub count: u64,
    /// Position of the last exported event (`after` when nothing was written): pass it as
    /// `after` to continue an incremental export.
    pub last_position: i64,
}

impl Store {
    /// Writes the log after position `after` to `out`, one [`StoredEvent`](crate::StoredEvent)
    /// JSON object per line, in position order, a page at a time (constant memory whatever the
    /// log's size). With `event = Some(id)`, only that OpenVLE event's history (its `event` and
    /// `moodle_sync` streams). Flushes `out` at the end.
    pub async fn export<W>(
        &self,
        after: i64,
        event: Option<&str>,
        out: &mut W,
    ) -> Result<ExportSummary, StoreError>
    where
        W: AsyncWrite + Unpin + Send,
    {
        let history_types = [
            <domain::event::VleEvent as Aggregate>::TYPE,
            <domain::moodle_sync::MoodleSync as Aggregate>::TYPE,
        ];
        let mut summary = ExportSummary {
            count: 0,
            last_position: after,
        };
        let mut query = LogQuery {
            after,
            limit: EXPORT_PAGE.min(MAX_PAGE),
            stream: event.map(str::to_string),
            ..LogQuery::default()
        };
        let mut line = Vec::with_capacity(1024);
        loop {
            let page = self.read_page(&query).await?;
            let Some(last) = page.last() else { break };
            query.after = last.position;
            for e in &page {
                if event.is_some() && !history_types.contains(&e.aggregate_type.as_str()) {
                    continue;
                }
                line.clear();
                serde_json::to_writer(&mut line, e).map_err(|err| StoreError::Decode {
                    position: e.position,
                    message: format!("cannot render as JSON: {err}"),
                })?;
                line.push(b'\n');
                out.write_all(&line).await?;
                summary.count += 1;
                summary.last_position = e.position;
            }
        }
        out.flush().await?;
        Ok(summary)
    }
}

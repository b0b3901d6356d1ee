//! Following the log into the live read models from their checkpoint, page by page: the loop
//! the projector runs and a replay finishes with (after its swap). Kept apart from both so
//! neither imports the other for it.

use projections::saga::SagaSettings;
use store::Store;

use crate::db;
use crate::error::ViewsError;
use crate::fold::Folder;
use crate::page;

pub(crate) struct Follower {
    store: Store,
    settings_json: String,
    page_size: usize,
    folder: Folder,
    /// The position through which the cached folds have seen every event (the end of the last
    /// page folded). When the checkpoint is found beyond it (another writer advanced the
    /// views), the cache may miss events and is dropped; when found before it (a replay's
    /// swap moved it back), cached folds skip what they already hold.
    folded_upto: i64,
}

impl Follower {
    pub(crate) fn new(
        store: &Store,
        settings: SagaSettings,
        page_size: usize,
        cache_capacity: usize,
    ) -> Self {
        Follower {
            store: store.clone(),
            settings_json: serde_json::to_string(&settings.view_fingerprint()).unwrap_or_default(),
            page_size: page_size.max(1),
            folder: Folder::new(store.clone(), settings, cache_capacity),
            folded_upto: 0,
        }
    }

    /// Forgets the cached folds (another build moved the views under this one).
    pub(crate) fn clear(&mut self) {
        self.folder.clear();
    }

    /// Pages from the checkpoint to the head; returns the number of log events committed.
    pub(crate) async fn follow(&mut self) -> Result<u64, ViewsError> {
        let mut total = 0u64;
        loop {
            let (from, _) = db::read_checkpoint(&self.store).await?;
            let page = self.store.read_all(from, self.page_size).await?;
            let Some(last) = page.last() else {
                return Ok(total);
            };
            let to = last.position;
            if from > self.folded_upto {
                self.folder.clear();
            }
            self.folded_upto = to;
            let out = self.folder.fold_page(&page).await?;
            if page::commit_page(&self.store, from, to, &self.settings_json, &out).await? {
                total += page.len() as u64;
            } else {
                tracing::debug!(
                    from,
                    "views checkpoint moved under the projector; re-reading"
                );
            }
        }
    }
}

//! Storage: one redb file per node, on its own thread.
//!
//! [`Store::open`] starts the storage thread; every operation is a closure run there
//! ([`Store::call`]) and answered through a oneshot channel, so redb never blocks an async
//! task. The command queue is bounded ([`STORE_QUEUE`]); callers wait when it is full
//! (backpressure: storage is the one thing we must not drop). Every write commits with
//! immediate durability before it is acknowledged; writes of untrusted input (envelopes from
//! peers) use two-phase commit. The operations themselves ([`ops`]) are plain functions on a
//! [`redb::Database`], tested directly.

pub mod archive;
pub mod migrate;
pub mod ops;
pub mod prune;
pub mod rows;
pub mod schema;
pub mod stats;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use chorus_protocol::ids::NetworkId;
pub use redb::Database;
use tokio::sync::{mpsc, oneshot};

/// Commands waiting for the storage thread. A tick's writes are batched by the caller into one
/// command, so this is many ticks of slack.
pub const STORE_QUEUE: usize = 1_024;

/// Storage errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// redb failed.
    #[error("storage: {0}")]
    Redb(#[from] redb::Error),
    /// The file belongs to a schema version this build cannot migrate from.
    #[error("store {path} has schema version {found}, this build uses {expected}: {why}")]
    SchemaMismatch {
        /// File.
        path: PathBuf,
        /// Found.
        found: u64,
        /// Expected.
        expected: u64,
        /// Why it cannot be migrated.
        why: String,
    },
    /// The file belongs to another network.
    #[error("store {path} belongs to network {found}, not {expected}")]
    WrongNetwork {
        /// File.
        path: PathBuf,
        /// Found.
        found: String,
        /// Expected.
        expected: String,
    },
    /// Stored bytes do not decode.
    #[error("corrupt record in {table}: {reason}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// Why.
        reason: String,
    },
    /// The storage thread is gone.
    #[error("the storage thread has stopped")]
    Closed,
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A job owns the database while it runs: between jobs no transaction is open, so a job may
/// also compact the file ([`Store::call_mut`]).
type Job = Box<dyn FnOnce(&mut Database) + Send>;

/// A handle to the storage thread. Cloneable; the thread stops when every handle is dropped.
#[derive(Clone, Debug)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    path: Arc<Path>,
}

/// The storage thread; join it after dropping every [`Store`] to be sure all writes landed.
#[derive(Debug)]
pub struct StoreThread(JoinHandle<()>);

impl StoreThread {
    /// Wait for the thread to finish its queue and exit.
    pub fn join(self) {
        let _ = self.0.join();
    }
}

impl Store {
    /// Open (or create) the store at `path` for `network` with a page cache of `cache_bytes`
    /// ([`ops::DEFAULT_CACHE_BYTES`] unless configured), check its schema version and
    /// network, and start the storage thread.
    pub fn open(
        path: &Path,
        network: &NetworkId,
        cache_bytes: usize,
    ) -> Result<(Store, StoreThread), StoreError> {
        let mut db = ops::open_with_cache(path, network, cache_bytes)?;
        let (tx, mut rx) = mpsc::channel::<Job>(STORE_QUEUE);
        let thread = std::thread::Builder::new()
            .name("chorus-store".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(&mut db);
                }
            })
            .map_err(|e| StoreError::Corrupt {
                table: "-",
                reason: format!("cannot start the storage thread: {e}"),
            })?;
        let store = Store {
            jobs: tx,
            path: Arc::from(path),
        };
        Ok((store, StoreThread(thread)))
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the storage thread and wait for its result.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        self.call_mut(move |db| f(db)).await
    }

    /// Run `f` on the storage thread with the database to itself (no transaction open, e.g.
    /// to compact it; [`stats::compact_if_grown`]) and wait for its result.
    pub async fn call_mut<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Database) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, rx) = with_reply(f);
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Queue `f` on the storage thread without waiting for it (jobs run in order, so a later
    /// [`Store::call`] returning means this one ran too). Errors are logged.
    pub async fn enqueue<F>(&self, what: &'static str, f: F) -> Result<(), StoreError>
    where
        F: FnOnce(&Database) -> Result<(), StoreError> + Send + 'static,
    {
        let job: Job = Box::new(move |db| {
            if let Err(e) = f(&*db) {
                tracing::error!(error = %e, what, "storage write failed");
            }
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)
    }

    /// Run `f` on the storage thread from synchronous code (not from inside a runtime).
    pub fn call_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, rx) = with_reply(move |db: &mut Database| f(db));
        self.jobs
            .blocking_send(job)
            .map_err(|_| StoreError::Closed)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }
}

/// `f` as a job whose result comes back on the returned receiver.
fn with_reply<T, F>(f: F) -> (Job, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: FnOnce(&mut Database) -> Result<T, StoreError> + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    let job: Job = Box::new(move |db| {
        let _ = reply.send(f(db));
    });
    (job, rx)
}

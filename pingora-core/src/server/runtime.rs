//! The tokio runtime of one service: one work-stealing runtime, or several
//! single-threaded runtimes side by side.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Spawns tasks onto a service's runtime threads.
///
/// On a work-stealing runtime every task goes to the one runtime, whose
/// workers share them. With single-threaded runtimes the tasks go to each
/// runtime in turn, so the work spreads over the threads.
#[derive(Debug, Clone)]
pub struct Spawner {
    handles: Arc<[Handle]>,
    next: Arc<AtomicUsize>,
}

impl Spawner {
    fn new(handles: Vec<Handle>) -> Self {
        Self {
            handles: handles.into(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A spawner for the runtime this is called on.
    ///
    /// # Panics
    ///
    /// Outside of a tokio runtime.
    pub fn current() -> Self {
        Self::new(vec![Handle::current()])
    }

    /// Spawn `task` on the next runtime.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(task)
    }

    /// How many runtimes tasks are spread over.
    pub fn runtimes(&self) -> usize {
        self.handles.len()
    }
}

/// The runtimes of one service. The service's main future runs on the
/// calling thread with [`block_on`](Self::block_on); extra single-threaded
/// runtimes run on their own threads until this is dropped.
pub(crate) struct ServiceRuntime {
    main: Runtime,
    spawner: Spawner,
    // Dropping a sender ends its thread's runtime.
    extra: Vec<oneshot::Sender<()>>,
}

impl ServiceRuntime {
    /// Build the runtime(s) for service `name` with `threads` threads.
    pub(crate) fn new(name: &str, threads: usize, work_stealing: bool) -> std::io::Result<Self> {
        let threads = threads.max(1);
        if work_stealing {
            let main = Builder::new_multi_thread()
                .enable_all()
                .worker_threads(threads)
                .thread_name(name)
                .build()?;
            let spawner = Spawner::new(vec![main.handle().clone()]);
            return Ok(Self {
                main,
                spawner,
                extra: Vec::new(),
            });
        }
        let main = Builder::new_current_thread().enable_all().build()?;
        let mut handles = vec![main.handle().clone()];
        let mut extra = Vec::new();
        for i in 1..threads {
            let rt = Builder::new_current_thread().enable_all().build()?;
            handles.push(rt.handle().clone());
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    // Either a stop message or the sender dropping ends it.
                    let _ = rt.block_on(stop_rx);
                })?;
            extra.push(stop_tx);
        }
        Ok(Self {
            main,
            spawner: Spawner::new(handles),
            extra,
        })
    }

    pub(crate) fn spawner(&self) -> Spawner {
        self.spawner.clone()
    }

    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.main.block_on(future)
    }
}

impl Drop for ServiceRuntime {
    fn drop(&mut self) {
        self.extra.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_names(rt: &ServiceRuntime, tasks: usize) -> Vec<String> {
        let spawner = rt.spawner();
        rt.block_on(async move {
            let mut names = Vec::new();
            for _ in 0..tasks {
                let name = spawner
                    .spawn(async { std::thread::current().name().unwrap_or("").to_string() })
                    .await
                    .unwrap();
                names.push(name);
            }
            names
        })
    }

    #[test]
    fn single_threaded_runtimes_share_tasks() {
        let rt = ServiceRuntime::new("svc", 3, false).unwrap();
        assert_eq!(rt.spawner().runtimes(), 3);
        let mut names = thread_names(&rt, 6);
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn work_stealing_runtime() {
        let rt = ServiceRuntime::new("steal", 2, true).unwrap();
        assert_eq!(rt.spawner().runtimes(), 1);
        assert!(thread_names(&rt, 4).iter().all(|n| n == "steal"));
    }
}

//! Admission of DDL operations in `lockstep serve`: the shell around the pure rules of
//! `lockstep_ddl_plan::schedule`. An operation takes a ticket when it is accepted (so the queue
//! keeps the order of acceptance), waits until its claims conflict with nothing running and
//! nothing queued before it, and gives its resources back when the ticket is dropped (finished,
//! failed or panicked alike).

use std::sync::{Arc, Mutex, MutexGuard};

use lockstep_ddl_plan::schedule::{may_start, Claims, Wait};
use tokio::sync::Notify;

#[derive(Default)]
struct Entries {
    next: u64,
    /// Accepted and waiting, in the order accepted.
    queued: Vec<(u64, Claims)>,
    running: Vec<(u64, Claims)>,
}

#[derive(Default)]
pub struct DdlQueue {
    entries: Mutex<Entries>,
    changed: Notify,
}

/// A place in the queue; dropping it leaves the queue (or frees what it ran with).
pub struct Ticket {
    queue: Arc<DdlQueue>,
    id: u64,
}

impl DdlQueue {
    fn entries(&self) -> MutexGuard<'_, Entries> {
        // A panic while the lock was held left the lists whole (every change is one push or
        // one remove), so the poison flag carries no information here.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a place at the end of the queue, now: the order of calls is the order of starts
    /// among operations that conflict.
    pub fn enqueue(self: &Arc<Self>, claims: Claims) -> Ticket {
        let mut entries = self.entries();
        entries.next += 1;
        let id = entries.next;
        entries.queued.push((id, claims));
        Ticket {
            queue: Arc::clone(self),
            id,
        }
    }

    /// Whether the ticket may start now; if so it moves to the running set.
    fn try_start(&self, id: u64) -> Result<(), Wait> {
        let mut entries = self.entries();
        let Some(index) = entries.queued.iter().position(|(t, _)| *t == id) else {
            return Ok(()); // already running
        };
        let running: Vec<&Claims> = entries.running.iter().map(|(_, c)| c).collect();
        let queued: Vec<&Claims> = entries.queued.iter().map(|(_, c)| c).collect();
        may_start(&running, &queued, index)?;
        let entry = entries.queued.remove(index);
        entries.running.push(entry);
        Ok(())
    }
}

impl Ticket {
    /// Waits until the operation may start; logs once what it waits for.
    pub async fn ready(&self) {
        let mut logged = false;
        loop {
            let changed = self.queue.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a release between the check and the await is
            // not missed.
            changed.as_mut().enable();
            match self.queue.try_start(self.id) {
                Ok(()) => return,
                Err(wait) => {
                    if !logged {
                        logged = true;
                        match wait {
                            Wait::Running(r) => {
                                tracing::info!("DDL operation waits: a running one holds {r}")
                            }
                            Wait::Earlier(r) => tracing::info!(
                                "DDL operation waits: one accepted before it needs {r}"
                            ),
                        }
                    }
                }
            }
            changed.await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        {
            let mut entries = self.queue.entries();
            entries.queued.retain(|(t, _)| *t != self.id);
            entries.running.retain(|(t, _)| *t != self.id);
        }
        self.queue.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_ddl::QualifiedName;
    use lockstep_ddl_plan::schedule::{Access, Claim, Resource};
    use std::time::Duration;

    fn claims(table: &str, access: Access) -> Claims {
        Claims::of([Claim {
            resource: Resource::Table("p".into(), QualifiedName::new("public", table)),
            access,
        }])
    }

    async fn starts(ticket: &Ticket) -> bool {
        tokio::time::timeout(Duration::from_millis(100), ticket.ready())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn independent_operations_start_together_and_a_conflicting_one_waits_its_turn() {
        let queue = Arc::new(DdlQueue::default());
        let a = queue.enqueue(claims("a", Access::Exclusive));
        let b = queue.enqueue(claims("b", Access::Exclusive));
        let a_again = queue.enqueue(claims("a", Access::Shared));
        let c = queue.enqueue(claims("c", Access::Shared));
        assert!(starts(&a).await, "first on a");
        assert!(starts(&b).await, "b is another table");
        assert!(!starts(&a_again).await, "a is held by a structural change");
        assert!(starts(&c).await, "c conflicts with nothing");

        let waiting = tokio::spawn(async move {
            a_again.ready().await;
            a_again
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(a);
        let a_again = tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("starts once a finished")
            .expect("task");
        drop((a_again, b, c));
        assert!(queue.entries().running.is_empty() && queue.entries().queued.is_empty());
    }

    #[tokio::test]
    async fn recovery_at_start_goes_first_and_alone() {
        let queue = Arc::new(DdlQueue::default());
        let recovery = queue.enqueue(Claims::everything());
        let later = queue.enqueue(claims("a", Access::Shared));
        assert!(starts(&recovery).await);
        assert!(!starts(&later).await);
        drop(recovery);
        assert!(starts(&later).await);
    }
}

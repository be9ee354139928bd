//! Every container berthd knows, found by id, unique id prefix or name;
//! each change written through to the state database before anyone sees
//! it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::record::{Record, Status};
use crate::db::{Db, DbError, Table};
use crate::error::ApiError;

/// What waiters watch: the status, how many exits there have been, and
/// whether the container is gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub status: Status,
    pub exits: u64,
    pub exit_code: i64,
    pub removed: bool,
}

#[derive(Debug)]
pub struct Entry {
    pub id: String,
    rec: Mutex<Record>,
    progress: watch::Sender<Progress>,
    /// Held by whatever changes the container's life (start, stop,
    /// restart, remove), so those never interleave.
    pub op: tokio::sync::Mutex<()>,
    /// Attaches waiting for the next start: each gets its stream from the
    /// shim before the container runs.
    pending: Mutex<Vec<PendingAttach>>,
}

type PendingAttach = (
    berth_shim::proto::AttachRequest,
    tokio::sync::oneshot::Sender<std::os::unix::net::UnixStream>,
);

impl Entry {
    fn new(rec: Record) -> Entry {
        let (tx, _) = watch::channel(Progress {
            status: rec.state.status,
            exits: 0,
            exit_code: rec.state.exit_code,
            removed: false,
        });
        Entry {
            id: rec.id.clone(),
            rec: Mutex::new(rec),
            progress: tx,
            op: tokio::sync::Mutex::new(()),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Wait for the next start: the receiver gets the shim stream.
    pub fn add_pending_attach(
        &self,
        req: berth_shim::proto::AttachRequest,
    ) -> tokio::sync::oneshot::Receiver<std::os::unix::net::UnixStream> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut p = self.pending.lock().expect("pending lock");
        p.retain(|(_, tx)| !tx.is_closed());
        p.push((req, tx));
        rx
    }

    pub fn has_pending_attaches(&self) -> bool {
        let mut p = self.pending.lock().expect("pending lock");
        p.retain(|(_, tx)| !tx.is_closed());
        !p.is_empty()
    }

    pub fn take_pending_attaches(&self) -> Vec<PendingAttach> {
        std::mem::take(&mut *self.pending.lock().expect("pending lock"))
    }

    /// A copy of the current record.
    pub fn record(&self) -> Record {
        self.rec.lock().expect("record lock").clone()
    }

    pub fn status(&self) -> Status {
        self.rec.lock().expect("record lock").state.status
    }

    pub fn watch(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }
}

#[derive(Debug)]
pub struct Registry {
    db: Arc<Db>,
    by_id: Mutex<HashMap<String, Arc<Entry>>>,
}

fn db_err(e: DbError) -> ApiError {
    ApiError::Internal(e.to_string())
}

impl Registry {
    /// Everything the database holds.
    pub fn load(db: Arc<Db>) -> Result<Registry, DbError> {
        let mut by_id = HashMap::new();
        for (id, rec) in db.load_all::<Record>(Table::Containers)? {
            by_id.insert(id, Arc::new(Entry::new(rec)));
        }
        Ok(Registry {
            db,
            by_id: Mutex::new(by_id),
        })
    }

    pub fn all(&self) -> Vec<Arc<Entry>> {
        let mut v: Vec<_> = self.by_id.lock().expect("lock").values().cloned().collect();
        // Newest first, as `docker ps` lists them.
        v.sort_by_cached_key(|e| std::cmp::Reverse(e.record().created));
        v
    }

    pub fn name_taken(&self, name: &str) -> Option<String> {
        self.by_id
            .lock()
            .expect("lock")
            .values()
            .find(|e| e.rec.lock().expect("record lock").name == name)
            .map(|e| e.id.clone())
    }

    /// Add a new container; its name must be free.
    pub fn insert(&self, rec: Record) -> Result<Arc<Entry>, ApiError> {
        let mut map = self.by_id.lock().expect("lock");
        if let Some(other) = map
            .values()
            .find(|e| e.rec.lock().expect("record lock").name == rec.name)
        {
            return Err(ApiError::Conflict(format!(
                "Conflict. The container name \"/{}\" is already in use by container \"{}\". \
                 You have to remove (or rename) that container to be able to reuse that name.",
                rec.name, other.id
            )));
        }
        self.db
            .put(Table::Containers, &rec.id, &rec)
            .map_err(db_err)?;
        let e = Arc::new(Entry::new(rec));
        map.insert(e.id.clone(), e.clone());
        Ok(e)
    }

    /// By full id, name (with or without `/`), or unique id prefix.
    pub fn get(&self, r: &str) -> Result<Arc<Entry>, ApiError> {
        let map = self.by_id.lock().expect("lock");
        if let Some(e) = map.get(r) {
            return Ok(e.clone());
        }
        let name = r.strip_prefix('/').unwrap_or(r);
        if let Some(e) = map
            .values()
            .find(|e| e.rec.lock().expect("record lock").name == name)
        {
            return Ok(e.clone());
        }
        let mut hits = map
            .values()
            .filter(|e| !r.is_empty() && e.id.starts_with(r));
        match (hits.next(), hits.next()) {
            (Some(e), None) => Ok(e.clone()),
            (Some(_), Some(_)) => Err(ApiError::InvalidParameter(format!(
                "multiple IDs found with provided prefix: {r}"
            ))),
            _ => Err(ApiError::NotFound(format!("No such container: {r}"))),
        }
    }

    /// Change the record, persist it, then tell the watchers.
    pub fn update<T>(&self, e: &Entry, f: impl FnOnce(&mut Record) -> T) -> Result<T, ApiError> {
        self.change(e, true, f)
    }

    /// Like [`Registry::update`] without waiting for the disk: for changes
    /// restore works out again if berthd dies before a durable write
    /// carries them (see [`Db::put_volatile`]).
    pub fn update_volatile<T>(
        &self,
        e: &Entry,
        f: impl FnOnce(&mut Record) -> T,
    ) -> Result<T, ApiError> {
        self.change(e, false, f)
    }

    fn change<T>(
        &self,
        e: &Entry,
        durable: bool,
        f: impl FnOnce(&mut Record) -> T,
    ) -> Result<T, ApiError> {
        let (out, status, code) = {
            let mut rec = e.rec.lock().expect("record lock");
            let mut next = rec.clone();
            let out = f(&mut next);
            if durable {
                self.db.put(Table::Containers, &next.id, &next)
            } else {
                self.db.put_volatile(Table::Containers, &next.id, &next)
            }
            .map_err(db_err)?;
            *rec = next;
            (out, rec.state.status, rec.state.exit_code)
        };
        e.progress.send_modify(|p| {
            p.status = status;
            p.exit_code = code;
        });
        Ok(out)
    }

    /// Record an exit: like [`Registry::update`], and it counts for
    /// `wait?condition=next-exit`.
    pub fn update_exit(
        &self,
        e: &Entry,
        durable: bool,
        f: impl FnOnce(&mut Record),
    ) -> Result<(), ApiError> {
        self.change(e, durable, f)?;
        e.progress.send_modify(|p| p.exits += 1);
        Ok(())
    }

    /// Rename, keeping names unique.
    pub fn rename(&self, e: &Entry, new: &str) -> Result<(), ApiError> {
        let map = self.by_id.lock().expect("lock");
        if let Some(other) = map
            .values()
            .find(|o| o.id != e.id && o.rec.lock().expect("record lock").name == new)
        {
            return Err(ApiError::Conflict(format!(
                "Conflict. The container name \"/{new}\" is already in use by container \"{}\". \
                 You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }
        self.update(e, |r| r.name = new.to_string())
    }

    /// Forget the container.
    pub fn remove(&self, e: &Entry) -> Result<(), ApiError> {
        self.db.delete(Table::Containers, &e.id).map_err(db_err)?;
        self.by_id.lock().expect("lock").remove(&e.id);
        e.take_pending_attaches();
        e.progress.send_modify(|p| p.removed = true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (tempfile::TempDir, Registry) {
        let d = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(&d.path().join("s.redb")).unwrap());
        (d, Registry::load(db).unwrap())
    }

    fn rec(id: &str, name: &str) -> Record {
        Record {
            id: id.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn lookup_by_id_prefix_and_name() {
        let (_d, r) = registry();
        r.insert(rec("abc123", "web")).unwrap();
        r.insert(rec("abd456", "db")).unwrap();
        assert_eq!(r.get("abc").unwrap().id, "abc123");
        assert_eq!(r.get("/db").unwrap().id, "abd456");
        assert_eq!(r.get("web").unwrap().id, "abc123");
        assert!(
            r.get("ab")
                .unwrap_err()
                .to_string()
                .contains("multiple IDs")
        );
        assert_eq!(
            r.get("zz").unwrap_err().to_string(),
            "No such container: zz"
        );
        let e = r.insert(rec("ccc", "web")).unwrap_err().to_string();
        assert!(
            e.contains("\"/web\" is already in use by container \"abc123\""),
            "{e}"
        );
    }

    #[test]
    fn updates_persist_and_notify() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.redb");
        {
            let r = Registry::load(Arc::new(Db::open(&path).unwrap())).unwrap();
            let e = r.insert(rec("abc", "web")).unwrap();
            let mut w = e.watch();
            r.update_exit(&e, true, |x| {
                x.state.status = Status::Exited;
                x.state.exit_code = 3;
            })
            .unwrap();
            assert!(w.has_changed().unwrap());
            let p = *w.borrow_and_update();
            assert_eq!((p.status, p.exits, p.exit_code), (Status::Exited, 1, 3));
            r.rename(&e, "web2").unwrap();
        }
        let r = Registry::load(Arc::new(Db::open(&path).unwrap())).unwrap();
        let e = r.get("web2").unwrap();
        assert_eq!(e.record().state.exit_code, 3);
        r.remove(&e).unwrap();
        assert!(r.get("web2").is_err());
    }
}

//! The state database: berthd's own records (containers, volumes) in one
//! redb file, each record a JSON value under its key. Every change is one
//! transaction, so a crash leaves either the old record or the new one.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The tables; keys are ids or names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Containers,
    Volumes,
}

impl Table {
    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Table::Containers => TableDefinition::new("containers"),
            Table::Volumes => TableDefinition::new("volumes"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Table::Containers => "containers",
            Table::Volumes => "volumes",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("state database {path}: {source}")]
    Db {
        path: PathBuf,
        source: Box<redb::Error>,
    },
    #[error("state database {path}: record {table}/{key}: {source}")]
    Record {
        path: PathBuf,
        table: &'static str,
        key: String,
        source: serde_json::Error,
    },
}

#[derive(Debug)]
pub struct Db {
    path: PathBuf,
    db: Database,
}

impl Db {
    /// Open (or create) the database at `path`. Fails if another berthd
    /// holds it.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let db = Database::create(path).map_err(|e| DbError::Db {
            path: path.to_path_buf(),
            source: Box::new(e.into()),
        })?;
        let db = Db {
            path: path.to_path_buf(),
            db,
        };
        // Tables exist from the start, so reads never meet a missing one.
        let tx = db.db.begin_write().map_err(db.err())?;
        for t in [Table::Containers, Table::Volumes] {
            tx.open_table(t.def()).map_err(db.err())?;
        }
        tx.commit().map_err(db.err())?;
        Ok(db)
    }

    fn err<E: Into<redb::Error>>(&self) -> impl Fn(E) -> DbError + '_ {
        |e| DbError::Db {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    /// Write `value` under `key`, replacing what was there.
    pub fn put<T: Serialize>(&self, table: Table, key: &str, value: &T) -> Result<(), DbError> {
        self.write(table, key, value, Durability::Immediate)
    }

    /// Like [`Db::put`], but the write reaches the disk only with the next
    /// durable one, and is lost if berthd dies first: for states that
    /// restore can work out again, so they need not cost an fsync.
    pub fn put_volatile<T: Serialize>(
        &self,
        table: Table,
        key: &str,
        value: &T,
    ) -> Result<(), DbError> {
        self.write(table, key, value, Durability::None)
    }

    fn write<T: Serialize>(
        &self,
        table: Table,
        key: &str,
        value: &T,
        durability: Durability,
    ) -> Result<(), DbError> {
        let raw = serde_json::to_vec(value).map_err(|source| DbError::Record {
            path: self.path.clone(),
            table: table.name(),
            key: key.to_string(),
            source,
        })?;
        let t0 = std::time::Instant::now();
        let mut tx = self.db.begin_write().map_err(self.err())?;
        tx.set_durability(durability).map_err(self.err())?;
        {
            let mut t = tx.open_table(table.def()).map_err(self.err())?;
            t.insert(key, raw.as_slice()).map_err(self.err())?;
        }
        tx.commit().map_err(self.err())?;
        tracing::trace!(key, "state database write: {:?}", t0.elapsed());
        Ok(())
    }

    pub fn delete(&self, table: Table, key: &str) -> Result<(), DbError> {
        let tx = self.db.begin_write().map_err(self.err())?;
        {
            let mut t = tx.open_table(table.def()).map_err(self.err())?;
            t.remove(key).map_err(self.err())?;
        }
        tx.commit().map_err(self.err())
    }

    /// Every record of `table`. A record that no longer parses is skipped
    /// with a warning rather than keeping the daemon from starting.
    pub fn load_all<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, DbError> {
        let tx = self.db.begin_read().map_err(self.err())?;
        let t = tx.open_table(table.def()).map_err(self.err())?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(self.err())? {
            let (k, v) = entry.map_err(self.err())?;
            let key = k.value().to_string();
            match serde_json::from_slice(v.value()) {
                Ok(rec) => out.push((key, rec)),
                Err(e) => tracing::warn!(
                    "state database {}: skipping record {}/{key}: {e}",
                    self.path.display(),
                    table.name()
                ),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let db = Db::open(&path).unwrap();
            db.put(Table::Containers, "a", &serde_json::json!({"n": 1}))
                .unwrap();
            db.put(Table::Containers, "b", &serde_json::json!({"n": 2}))
                .unwrap();
            db.put(Table::Volumes, "v", &serde_json::json!({"n": 3}))
                .unwrap();
            db.delete(Table::Containers, "b").unwrap();
        }
        let db = Db::open(&path).unwrap();
        let c: Vec<(String, serde_json::Value)> = db.load_all(Table::Containers).unwrap();
        assert_eq!(c, vec![("a".to_string(), serde_json::json!({"n": 1}))]);
        let v: Vec<(String, serde_json::Value)> = db.load_all(Table::Volumes).unwrap();
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn a_volatile_write_is_kept_by_the_next_durable_one_and_lost_without() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let db = Db::open(&path).unwrap();
            db.put_volatile(Table::Containers, "a", &serde_json::json!({"n": 1}))
                .unwrap();
            let seen: Vec<(String, serde_json::Value)> = db.load_all(Table::Containers).unwrap();
            assert_eq!(seen.len(), 1, "a volatile write is visible at once");
            db.put(Table::Containers, "b", &serde_json::json!({"n": 2}))
                .unwrap();
            db.put_volatile(Table::Containers, "c", &serde_json::json!({"n": 3}))
                .unwrap();
            // What a crash leaves is what the file holds now, without the
            // clean shutdown that would flush "c".
            std::fs::copy(&path, dir.path().join("crashed.redb")).unwrap();
        }
        let db = Db::open(&dir.path().join("crashed.redb")).unwrap();
        let keys: Vec<String> = db
            .load_all::<serde_json::Value>(Table::Containers)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["a", "b"]);
    }

    #[test]
    fn a_second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let _db = Db::open(&path).unwrap();
        let e = Db::open(&path).unwrap_err().to_string();
        assert!(e.contains("state.redb"), "{e}");
    }
}

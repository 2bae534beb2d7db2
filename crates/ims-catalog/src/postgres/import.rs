//! The PostgreSQL side of a catalog migration (see [`crate::transfer`]): rows inserted as they are,
//! keeping whatever the target has under the same key.

use sqlx::{Postgres, QueryBuilder};

use super::{db_err, PostgresCatalog};
use crate::transfer::{target_columns, Bind, ColumnKind, Row, Table};
use crate::Result;

impl PostgresCatalog {
    /// Inserts `rows` (in [`target_columns`] order) into `table` in one transaction, skipping every row
    /// whose primary key is there already, and returns how many were inserted. Identity columns take the
    /// given values. Atomic: on an error nothing of `rows` is inserted.
    pub async fn import_rows(&self, table: &Table, rows: &[Row]) -> Result<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let columns = target_columns(table);
        let mut sql = QueryBuilder::<Postgres>::new(format!("INSERT INTO {} ({})", table.name, columns.join(", ")));
        if table.identity {
            sql.push(" OVERRIDING SYSTEM VALUE");
        }
        sql.push(" VALUES ");
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(");
            for (j, value) in row.iter().enumerate() {
                if j > 0 {
                    sql.push(", ");
                }
                push_bind(&mut sql, value);
            }
            sql.push(")");
        }
        sql.push(format!(" ON CONFLICT ({}) DO NOTHING", table.key.join(", ")));
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done = sql.build().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(done.rows_affected())
    }

    /// Moves `table`'s identity sequence past the largest value of its key, so that rows written later
    /// get fresh values.
    pub async fn advance_identity(&self, table: &Table) -> Result<()> {
        let key = table.key[0];
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{0}', '{1}'), GREATEST((SELECT MAX({1}) FROM {0}), 1), \
             (SELECT MAX({1}) FROM {0}) IS NOT NULL)",
            table.name, key
        ))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// Whether the target holds a row that contradicts one of `rows` of the source (in [`target_columns`]
    /// order): one with the same key and other values in `table.immutable`, or one with the same value in
    /// a `table.unique` column under another key. Returns a description of the first such row, or `None`.
    /// One query per check and page of rows; reads only.
    pub async fn first_conflict(&self, table: &Table, rows: &[Row]) -> Result<Option<String>> {
        if rows.is_empty() {
            return Ok(None);
        }
        let columns = target_columns(table);
        let expand = |name: &str| -> Vec<String> {
            match table.columns.iter().find(|c| c.name == name).map(|c| c.kind) {
                Some(ColumnKind::Time) => vec![name.to_string(), format!("{name}_ns")],
                _ => vec![name.to_string()],
            }
        };
        let key_text =
            table.key.iter().map(|k| format!("t.{k}::text")).collect::<Vec<_>>().join(" || ', ' || ");
        // Compared as text in byte order: the columns' collations ("C" for some) and the values' then agree.
        let key_match = table.key.iter().map(|k| format!("t.{k}::text = s.{k}::text COLLATE \"C\"")).collect::<Vec<_>>().join(" AND ");
        if !table.immutable.is_empty() {
            let same = table
                .immutable
                .iter()
                .flat_map(|n| expand(n))
                .map(|c| format!("t.{c}::text IS NOT DISTINCT FROM s.{c}::text COLLATE \"C\""))
                .collect::<Vec<_>>()
                .join(" AND ");
            let mut sql = QueryBuilder::<Postgres>::new(format!("SELECT {key_text} FROM {} t JOIN ", table.name));
            push_values(&mut sql, &columns, rows);
            sql.push(format!(" ON {key_match} WHERE NOT ({same}) LIMIT 1"));
            let found: Option<String> = sql.build_query_scalar().fetch_optional(&self.pool).await.map_err(db_err)?;
            if let Some(key) = found {
                return Ok(Some(format!(
                    "{} row ({key}) has other values of {} than the source's",
                    table.name,
                    table.immutable.join(", ")
                )));
            }
        }
        for unique in table.unique {
            let mut sql = QueryBuilder::<Postgres>::new(format!("SELECT t.{unique}::text FROM {} t JOIN ", table.name));
            push_values(&mut sql, &columns, rows);
            sql.push(format!(" ON t.{unique}::text = s.{unique}::text COLLATE \"C\" WHERE NOT ({key_match}) LIMIT 1"));
            let found: Option<String> = sql.build_query_scalar().fetch_optional(&self.pool).await.map_err(db_err)?;
            if let Some(value) = found {
                return Ok(Some(format!("{} {unique} {value:?} belongs to another row than the source's", table.name)));
            }
        }
        Ok(None)
    }
}

/// `(VALUES (...), ...) AS s(columns)`: the rows as a table to join with.
fn push_values<'a>(sql: &mut QueryBuilder<'a, Postgres>, columns: &[String], rows: &'a [Row]) {
    sql.push("(VALUES ");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(");
        for (j, value) in row.iter().enumerate() {
            if j > 0 {
                sql.push(", ");
            }
            push_bind(sql, value);
        }
        sql.push(")");
    }
    sql.push(format!(") AS s({})", columns.join(", ")));
}

fn push_bind<'a>(sql: &mut QueryBuilder<'a, Postgres>, value: &'a Bind) {
    match value {
        Bind::Text(v) => sql.push_bind(v.as_deref()),
        Bind::Cast(v, ty) => sql.push_bind(v.as_deref()).push(format!("::{ty}")),
        Bind::Int(v) => sql.push_bind(*v),
        Bind::Small(v) => sql.push_bind(*v),
        Bind::Bool(v) => sql.push_bind(*v),
        Bind::Real(v) => sql.push_bind(*v),
        Bind::Time(v) => sql.push_bind(*v),
    };
}

//! Rendering: human tables, or JSON for scripts.

use clap::ValueEnum;
use ims_client::{AuthInfo, Image, Member, Project, User};
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Json,
}

/// `value` as pretty JSON, newline-terminated.
pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("serializing to JSON cannot fail");
    s.push('\n');
    s
}

/// A table with a header row, drawn like OpenStack's client does.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table { headers: headers.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut cells: Vec<String> =
            cells.into_iter().map(|c| c.into().replace(['\n', '\r', '\t'], " ")).collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let rule: String = {
            let mut s = String::from("+");
            for w in &widths {
                s.push_str(&"-".repeat(w + 2));
                s.push('+');
            }
            s.push('\n');
            s
        };
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (cell, w) in cells.iter().zip(&widths) {
                s.push(' ');
                s.push_str(cell);
                s.push_str(&" ".repeat(w - width(cell) + 1));
                s.push('|');
            }
            s.push('\n');
            s
        };
        let mut out = rule.clone();
        out.push_str(&line(&self.headers));
        out.push_str(&rule);
        for row in &self.rows {
            out.push_str(&line(row));
        }
        if !self.rows.is_empty() {
            out.push_str(&rule);
        }
        out
    }
}

/// A two-column Field | Value table.
pub fn fields<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> String {
    let mut t = Table::new(["Field", "Value"]);
    for (k, v) in pairs {
        t.row([k.into(), v.into()]);
    }
    t.render()
}

/// A JSON value as a table cell: strings bare, null empty, others compact JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// One image: every Glance field, then the properties, one per row.
pub fn image(img: &Image, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => json(img),
        OutputFormat::Table => {
            let mut rows: Vec<(String, String)> = vec![
                ("id".into(), img.id.clone()),
                ("name".into(), opt(&img.name)),
                ("status".into(), img.status.clone()),
                ("visibility".into(), img.visibility.clone()),
                ("protected".into(), img.protected.to_string()),
                ("os_hidden".into(), img.os_hidden.to_string()),
                ("owner".into(), opt(&img.owner)),
                ("disk_format".into(), opt(&img.disk_format)),
                ("container_format".into(), opt(&img.container_format)),
                ("size".into(), opt(&img.size)),
                ("virtual_size".into(), opt(&img.virtual_size)),
                ("min_disk".into(), img.min_disk.to_string()),
                ("min_ram".into(), img.min_ram.to_string()),
                ("checksum".into(), opt(&img.checksum)),
                ("os_hash_algo".into(), opt(&img.os_hash_algo)),
                ("os_hash_value".into(), opt(&img.os_hash_value)),
                ("tags".into(), img.tags.join(", ")),
                ("created_at".into(), img.created_at.clone()),
                ("updated_at".into(), img.updated_at.clone()),
                ("file".into(), img.file.clone()),
                ("self".into(), img.self_link.clone()),
                ("schema".into(), img.schema.clone()),
            ];
            if let Some(at) = &img.deprecate_at {
                rows.push(("deprecate_at".into(), at.clone()));
            }
            rows.extend(img.properties.iter().map(|(k, v)| (k.clone(), cell(v))));
            fields(rows)
        }
    }
}

/// A list of images: a JSON array, or one row per image.
pub fn images(imgs: &[Image], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => json(imgs),
        OutputFormat::Table => {
            let mut t = Table::new(["ID", "Name", "Status", "Visibility", "Disk Format", "Size"]);
            for i in imgs {
                t.row([
                    i.id.clone(),
                    opt(&i.name),
                    i.status.clone(),
                    i.visibility.clone(),
                    opt(&i.disk_format),
                    opt(&i.size),
                ]);
            }
            t.render()
        }
    }
}

pub fn member(m: &Member, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => json(m),
        OutputFormat::Table => fields([
            ("image_id", m.image_id.clone()),
            ("member_id", m.member_id.clone()),
            ("status", m.status.clone()),
            ("created_at", m.created_at.clone()),
            ("updated_at", m.updated_at.clone()),
        ]),
    }
}

pub fn members(ms: &[Member], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => json(ms),
        OutputFormat::Table => {
            let mut t = Table::new(["Image ID", "Member ID", "Status", "Created At", "Updated At"]);
            for m in ms {
                t.row([
                    m.image_id.clone(),
                    m.member_id.clone(),
                    m.status.clone(),
                    m.created_at.clone(),
                    m.updated_at.clone(),
                ]);
            }
            t.render()
        }
    }
}

pub fn project(p: &Project, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => json(p),
        OutputFormat::Table => {
            fields([("id", p.id.clone()), ("name", p.name.clone()), ("created_at", p.created_at.clone())])
        }
    }
}

pub fn projects(ps: &[Project], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => json(ps),
        OutputFormat::Table => {
            let mut t = Table::new(["ID", "Name", "Created At"]);
            for p in ps {
                t.row([p.id.clone(), p.name.clone(), p.created_at.clone()]);
            }
            t.render()
        }
    }
}

fn roles(u: &User) -> String {
    if !u.roles.is_empty() {
        return u.roles.iter().map(|r| format!("{}:{}", r.project_id, r.role)).collect::<Vec<_>>().join(", ");
    }
    match (&u.project_id, &u.role) {
        (Some(p), Some(r)) => format!("{p}:{r}"),
        _ => String::new(),
    }
}

pub fn users(us: &[User], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => json(us),
        OutputFormat::Table => {
            let mut t = Table::new(["ID", "Name", "Roles (project:role)", "Created At"]);
            for u in us {
                t.row([u.id.clone(), u.name.clone(), roles(u), u.created_at.clone()]);
            }
            t.render()
        }
    }
}

/// `ims whoami`: the server's object, plus flat `user_id`, `user_name`, `project_id`, `project_name`.
pub fn auth_info(a: &AuthInfo, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => {
            let mut v = serde_json::to_value(a).expect("serializable");
            if let Value::Object(map) = &mut v {
                map.insert("user_id".into(), json!(a.user.id));
                map.insert("user_name".into(), json!(a.user.name));
                map.insert("project_id".into(), json!(a.project.id));
                map.insert("project_name".into(), json!(a.project.name));
            }
            json(&v)
        }
        OutputFormat::Table => fields([
            ("user_id", a.user.id.clone()),
            ("user_name", a.user.name.clone()),
            ("project_id", a.project.id.clone()),
            ("project_name", a.project.name.clone()),
            ("role", a.role.clone()),
            ("is_admin", a.is_admin.to_string()),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_image() -> Image {
        serde_json::from_value(json!({
            "id": "11111111-2222-3333-4444-555555555555",
            "name": "cirros",
            "status": "active",
            "visibility": "private",
            "protected": false,
            "os_hidden": false,
            "checksum": "abc",
            "os_hash_algo": "sha512",
            "os_hash_value": "def",
            "owner": "p1",
            "size": 42,
            "virtual_size": null,
            "container_format": "bare",
            "disk_format": "raw",
            "min_disk": 0,
            "min_ram": 0,
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "tags": ["t1", "t2"],
            "self": "/v2/images/11111111-2222-3333-4444-555555555555",
            "file": "/v2/images/11111111-2222-3333-4444-555555555555/file",
            "schema": "/v2/schemas/image",
            "os_distro": "cirros"
        }))
        .unwrap()
    }

    #[test]
    fn table_layout() {
        let mut t = Table::new(["ID", "Name"]);
        t.row(["1", "a-long-name"]);
        t.row(["22", "b\nc"]);
        assert_eq!(
            t.render(),
            "+----+-------------+\n\
             | ID | Name        |\n\
             +----+-------------+\n\
             | 1  | a-long-name |\n\
             | 22 | b c         |\n\
             +----+-------------+\n"
        );
    }

    #[test]
    fn empty_table_has_only_the_header() {
        assert_eq!(Table::new(["A"]).render(), "+---+\n| A |\n+---+\n");
    }

    #[test]
    fn image_json_is_the_record() {
        let img = sample_image();
        let out = image(&img, OutputFormat::Json);
        let back: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["id"], "11111111-2222-3333-4444-555555555555");
        assert_eq!(back["self"], "/v2/images/11111111-2222-3333-4444-555555555555");
        assert_eq!(back["os_distro"], "cirros");
        assert_eq!(back["virtual_size"], Value::Null);
        assert!(back.get("properties").is_none(), "properties are flat");
    }

    #[test]
    fn image_list_json_is_an_array() {
        let img = sample_image();
        let out = images(&[img.clone(), img], OutputFormat::Json);
        let back: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back.as_array().unwrap().len(), 2);
        assert_eq!(images(&[], OutputFormat::Json), "[]\n");
    }

    #[test]
    fn image_tables() {
        let img = sample_image();
        let show = image(&img, OutputFormat::Table);
        assert!(show.contains("| name             | cirros"));
        assert!(show.contains("| tags             | t1, t2"));
        assert!(show.contains("| os_distro        | cirros"));
        assert!(show.contains("| virtual_size     |  "));
        let list = images(&[img], OutputFormat::Table);
        assert!(list.lines().nth(1).unwrap().starts_with("| ID "));
        assert!(list.contains("| 11111111-2222-3333-4444-555555555555 | cirros | active | private    | raw         | 42   |"));
    }

    #[test]
    fn whoami_json_has_flat_keys() {
        let a = AuthInfo {
            user: ims_client::NamedRef { id: "u".into(), name: "alice".into() },
            project: ims_client::NamedRef { id: "p".into(), name: "demo".into() },
            role: "member".into(),
            is_admin: false,
        };
        let v: Value = serde_json::from_str(&auth_info(&a, OutputFormat::Json)).unwrap();
        assert_eq!(v["project_id"], "p");
        assert_eq!(v["user_name"], "alice");
        assert_eq!(v["project"]["name"], "demo");
    }

    #[test]
    fn user_roles_cell() {
        let u: User = serde_json::from_value(json!({
            "id": "u", "name": "n", "created_at": "t",
            "roles": [{"project_id": "p1", "role": "admin"}, {"project_id": "p2", "role": "reader"}]
        }))
        .unwrap();
        assert!(users(&[u], OutputFormat::Table).contains("p1:admin, p2:reader"));
    }
}

//! `ims admin metadefs load DIR`: loads metadata definition files (Glance's format: one JSON namespace
//! per file, with its objects, properties, tags and resource type associations) through the
//! metadata definitions API.
//!
//! Every `*.json` file of DIR is read and checked before anything is sent. A namespace that does not
//! exist is created with its contents in one request. One that exists is brought in line with the file:
//! its fields, objects and properties are replaced where they differ, and missing tags and associations
//! are added; entries the server has beyond the file are kept. Re-running the command changes nothing and
//! reports every namespace as unchanged.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use ims_client::{Client, MetadefKind};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::Ctx;
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Subcommand)]
pub enum MetadefsCommand {
    /// Load every *.json definition file of DIR (Glance's format); safe to re-run.
    Load(LoadArgs),
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Directory of definition files, one namespace per file.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// What loading one file did.
#[derive(Debug, Clone, Serialize)]
struct LoadResult {
    file: String,
    namespace: String,
    /// `created`, `updated` or `unchanged`.
    result: &'static str,
    objects: usize,
    properties: usize,
    tags: usize,
    resource_type_associations: usize,
}

pub async fn run(ctx: &Ctx, command: MetadefsCommand) -> anyhow::Result<()> {
    match command {
        MetadefsCommand::Load(args) => load(ctx, &args.dir).await,
    }
}

/// Reads and checks every definition file of `dir`, ordered by file name.
fn read_files(dir: &Path) -> anyhow::Result<Vec<(String, Map<String, Value>)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read directory {}", dir.display()))?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "json") && p.is_file());
    paths.sort();
    if paths.is_empty() {
        bail!("no *.json definition files in {}", dir.display());
    }
    let mut files = Vec::with_capacity(paths.len());
    let mut seen = std::collections::BTreeMap::new();
    for path in paths {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let value: Value = serde_json::from_str(&text).with_context(|| format!("{name}: not valid JSON"))?;
        let Value::Object(map) = value else { bail!("{name}: a definition file holds one JSON object") };
        let Some(namespace) = map.get("namespace").and_then(Value::as_str) else {
            bail!("{name}: \"namespace\" (a string) is missing")
        };
        if let Some(other) = seen.insert(namespace.to_string(), name.clone()) {
            bail!("{name}: namespace {namespace} is also defined in {other}");
        }
        files.push((name, map));
    }
    Ok(files)
}

async fn load(ctx: &Ctx, dir: &Path) -> anyhow::Result<()> {
    let files = read_files(dir)?;
    let mut results = Vec::with_capacity(files.len());
    for (file, definition) in files {
        let result = load_one(&ctx.client, &file, &definition).await.with_context(|| format!("loading {file}"))?;
        results.push(result);
    }
    ctx.print(&render(&results, ctx.output))
}

/// The entries of `key` in a definition: objects and tags are lists of objects with a name, properties a
/// map from name to definition (returned with the name inside).
fn entries(definition: &Map<String, Value>, key: &str) -> Vec<Value> {
    match definition.get(key) {
        Some(Value::Array(list)) => list.clone(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, def)| {
                let mut def = def.as_object().cloned().unwrap_or_default();
                def.insert("name".into(), json!(name));
                Value::Object(def)
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn name_of(entry: &Value) -> String {
    entry.get("name").and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Whether the server's `current` already says everything `wanted` says.
fn covers(current: &Value, wanted: &Value) -> bool {
    match (current.as_object(), wanted.as_object()) {
        (Some(current), Some(wanted)) => wanted.iter().all(|(k, v)| current.get(k) == Some(v)),
        _ => false,
    }
}

async fn load_one(client: &Client, file: &str, definition: &Map<String, Value>) -> anyhow::Result<LoadResult> {
    let namespace = definition["namespace"].as_str().unwrap_or_default().to_string();
    let objects = entries(definition, "objects");
    let properties = entries(definition, "properties");
    let tags: Vec<String> = entries(definition, "tags").iter().map(name_of).collect();
    let associations = entries(definition, "resource_type_associations");
    let mut result = LoadResult {
        file: file.to_string(),
        namespace: namespace.clone(),
        result: "unchanged",
        objects: objects.len(),
        properties: properties.len(),
        tags: tags.len(),
        resource_type_associations: associations.len(),
    };
    let Some(current) = client.metadef_namespace(&namespace).await? else {
        client.create_metadef_namespace(&Value::Object(definition.clone())).await?;
        result.result = "created";
        return Ok(result);
    };
    let mut changed = false;
    let fields: Map<String, Value> = ["namespace", "display_name", "description", "visibility", "protected", "owner"]
        .iter()
        .filter_map(|k| definition.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    // A replacement resets what it leaves out (visibility private, unprotected): compare as the server would.
    let mut effective = fields.clone();
    effective.entry("visibility").or_insert(json!("private"));
    effective.entry("protected").or_insert(json!(false));
    if !covers(&current, &Value::Object(effective)) {
        let mut replacement = fields;
        if !replacement.contains_key("owner") {
            if let Some(owner) = current.get("owner") {
                replacement.insert("owner".into(), owner.clone());
            }
        }
        client.update_metadef_namespace(&namespace, &Value::Object(replacement)).await?;
        changed = true;
    }
    for (kind, list) in [(MetadefKind::Objects, &objects), (MetadefKind::Properties, &properties)] {
        for entry in list {
            let name = name_of(entry);
            match client.metadef_entry(&namespace, kind, &name).await? {
                None => {
                    client.create_metadef_entry(&namespace, kind, entry).await?;
                    changed = true;
                }
                Some(existing) if !covers(&existing, entry) => {
                    client.update_metadef_entry(&namespace, kind, &name, entry).await?;
                    changed = true;
                }
                Some(_) => {}
            }
        }
    }
    let current_tags: Vec<String> = entries(current.as_object().unwrap_or(&Map::new()), "tags").iter().map(name_of).collect();
    let missing_tags: Vec<String> = tags.iter().filter(|t| !current_tags.contains(t)).cloned().collect();
    if !missing_tags.is_empty() {
        client.create_metadef_tags(&namespace, &missing_tags, true).await?;
        changed = true;
    }
    let current_associations: Vec<String> =
        entries(current.as_object().unwrap_or(&Map::new()), "resource_type_associations").iter().map(name_of).collect();
    for association in &associations {
        if !current_associations.contains(&name_of(association)) {
            client.create_metadef_association(&namespace, association).await?;
            changed = true;
        }
    }
    if changed {
        result.result = "updated";
    }
    Ok(result)
}

fn render(results: &[LoadResult], format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => output::json(results),
        OutputFormat::Table => {
            let mut table =
                Table::new(["File", "Namespace", "Result", "Objects", "Properties", "Tags", "Resource types"]);
            for r in results {
                table.row([
                    r.file.clone(),
                    r.namespace.clone(),
                    r.result.to_string(),
                    r.objects.to_string(),
                    r.properties.to_string(),
                    r.tags.to_string(),
                    r.resource_type_associations.to_string(),
                ]);
            }
            let count = |what: &str| results.iter().filter(|r| r.result == what).count();
            format!(
                "{}\n{} namespace(s): {} created, {} updated, {} unchanged",
                table.render().trim_end(),
                results.len(),
                count("created"),
                count("updated"),
                count("unchanged")
            )
        }
    }
}

//! `ims admin metadefs load DIR` against a real `ims serve`: definition files in Glance's format are
//! created through the API, a re-run changes nothing, an edited file updates its namespace, and a bad
//! directory is refused before anything is sent.

mod common;

use common::{Server, ADMIN_TOKEN};
use ims_client::Client;
use serde_json::{json, Value};

fn cpu_pinning(policies: &[&str]) -> Value {
    json!({
        "namespace": "OS::Compute::CPUPinning",
        "display_name": "CPU Pinning",
        "description": "The CPU pinning policy of the guest.",
        "visibility": "public",
        "protected": true,
        "resource_type_associations": [
            {"name": "OS::Glance::Image", "prefix": "hw_"},
            {"name": "OS::Cinder::Volume", "prefix": "hw_", "properties_target": "image"},
            {"name": "OS::Nova::Flavor", "prefix": "hw:"}
        ],
        "properties": {
            "cpu_policy": {"title": "CPU Pinning policy", "description": "Type of CPU pinning policy.", "type": "string", "enum": policies},
            "cpu_thread_policy": {"title": "CPU Thread Pinning Policy.", "type": "string", "enum": ["isolate", "prefer", "require"]}
        }
    })
}

fn watchdog(tags: &[&str]) -> Value {
    json!({
        "namespace": "OS::Compute::Watchdog",
        "display_name": "Watchdog Behavior",
        "visibility": "public",
        "protected": false,
        "resource_type_associations": [{"name": "OS::Glance::Image"}, {"name": "OS::Nova::Flavor", "prefix": "hw:"}],
        "objects": [{
            "name": "Watchdog",
            "description": "What happens when the guest hangs.",
            "required": ["watchdog_action"],
            "properties": {"watchdog_action": {"title": "Watchdog Action", "type": "string", "enum": ["disabled", "reset", "poweroff", "pause", "none"]}}
        }],
        "tags": tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>()
    })
}

fn write(dir: &std::path::Path, name: &str, value: &Value) {
    std::fs::write(dir.join(name), serde_json::to_string_pretty(value).unwrap()).unwrap();
}

fn results(out: &Value) -> Vec<(String, String)> {
    out.as_array()
        .unwrap()
        .iter()
        .map(|r| (r["namespace"].as_str().unwrap().to_string(), r["result"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn definition_files_are_loaded_idempotently_through_the_api() {
    let s = Server::start();
    let dir = s.path("metadefs");
    std::fs::create_dir(&dir).unwrap();
    write(&dir, "compute-cpu-pinning.json", &cpu_pinning(&["shared", "dedicated"]));
    write(&dir, "compute-watchdog.json", &watchdog(&["hang"]));
    std::fs::write(dir.join("README"), "not a definition").unwrap();
    let dir_arg = dir.to_str().unwrap();

    let first = s.json(ADMIN_TOKEN, &["admin", "metadefs", "load", dir_arg]);
    assert_eq!(
        results(&first),
        [("OS::Compute::CPUPinning".into(), "created".into()), ("OS::Compute::Watchdog".into(), "created".into())]
    );
    assert_eq!((first[0]["properties"].as_u64(), first[0]["resource_type_associations"].as_u64()), (Some(2), Some(3)));
    assert_eq!((first[1]["objects"].as_u64(), first[1]["tags"].as_u64()), (Some(1), Some(1)));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = Client::new(&s.url, ADMIN_TOKEN).unwrap();
    let shown = rt.block_on(client.metadef_namespace("OS::Compute::CPUPinning")).unwrap().expect("created");
    assert_eq!(shown["protected"], true);
    assert_eq!(shown["properties"]["cpu_policy"]["enum"], json!(["shared", "dedicated"]));
    assert_eq!(shown["resource_type_associations"].as_array().unwrap().len(), 3);

    let again = s.json(ADMIN_TOKEN, &["admin", "metadefs", "load", dir_arg]);
    assert_eq!(
        results(&again),
        [("OS::Compute::CPUPinning".into(), "unchanged".into()), ("OS::Compute::Watchdog".into(), "unchanged".into())]
    );

    write(&dir, "compute-cpu-pinning.json", &cpu_pinning(&["shared", "dedicated", "mixed"]));
    write(&dir, "compute-watchdog.json", &watchdog(&["hang", "reboot"]));
    let table = s.admin(&["admin", "metadefs", "load", dir_arg]).ok().stdout();
    assert!(table.contains("2 namespace(s): 0 created, 2 updated, 0 unchanged"), "{table}");
    let shown = rt.block_on(client.metadef_namespace("OS::Compute::CPUPinning")).unwrap().unwrap();
    assert_eq!(shown["properties"]["cpu_policy"]["enum"], json!(["shared", "dedicated", "mixed"]));
    let shown = rt.block_on(client.metadef_namespace("OS::Compute::Watchdog")).unwrap().unwrap();
    assert_eq!(shown["tags"], json!([{"name": "hang"}, {"name": "reboot"}]));

    // Non-admins may not change definitions (reading the public ones is allowed, so nothing else fails).
    let (_, member) = s.tenant("md-project", "md-user");
    write(&dir, "compute-cpu-pinning.json", &cpu_pinning(&["shared"]));
    let err = s.ims(Some(&member), &["admin", "metadefs", "load", dir_arg]).fails();
    assert!(err.contains("403"), "{err}");
    let shown = rt.block_on(client.metadef_namespace("OS::Compute::CPUPinning")).unwrap().unwrap();
    assert_eq!(shown["properties"]["cpu_policy"]["enum"], json!(["shared", "dedicated", "mixed"]), "unchanged");
}

#[test]
fn a_bad_directory_is_refused_before_anything_is_sent() {
    let s = Server::start();
    let dir = s.path("bad");
    std::fs::create_dir(&dir).unwrap();
    let dir_arg = dir.to_str().unwrap();
    let err = s.admin(&["admin", "metadefs", "load", dir_arg]).fails();
    assert!(err.contains("no *.json definition files"), "{err}");

    write(&dir, "a.json", &watchdog(&[]));
    std::fs::write(dir.join("b.json"), "{ not json").unwrap();
    let err = s.admin(&["admin", "metadefs", "load", dir_arg]).fails();
    assert!(err.contains("b.json") && err.contains("not valid JSON"), "{err}");
    write(&dir, "b.json", &watchdog(&[]));
    let err = s.admin(&["admin", "metadefs", "load", dir_arg]).fails();
    assert!(err.contains("also defined in a.json"), "{err}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = Client::new(&s.url, ADMIN_TOKEN).unwrap();
    assert!(rt.block_on(client.metadef_namespace("OS::Compute::Watchdog")).unwrap().is_none(), "nothing was loaded");
}

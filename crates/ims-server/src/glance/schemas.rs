//! `/v2/schemas/*`: the JSON schemas clients validate against (python-glanceclient uses them to
//! build its models), matching Glance's.

use axum::extract::Path;
use axum::Json;
use ims_core::limits::{CONTAINER_FORMATS, DISK_FORMATS};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};

const UUID_PATTERN: &str =
    "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$";

pub async fn show(Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let schema = match name.as_str() {
        "image" => image(),
        "images" => collection("images", image()),
        "member" => member(),
        "members" => collection("members", member()),
        "task" => super::tasks::schema(),
        "tasks" => collection("tasks", super::tasks::schema()),
        _ => return Err(ApiError::not_found(format!("No schema named {name}"))),
    };
    Ok(Json(schema))
}

fn nullable_enum(values: &[&str]) -> Value {
    let mut all = vec![Value::Null];
    all.extend(values.iter().map(|v| json!(v)));
    Value::Array(all)
}

/// The image schema: Glance's base properties, its default extra properties, and string-valued
/// additional properties.
pub fn image() -> Value {
    let mut schema = json!({
        "name": "image",
        "properties": {
            "id": {"type": "string", "description": "An identifier for the image", "pattern": UUID_PATTERN},
            "name": {"type": ["null", "string"], "description": "Descriptive name for the image", "maxLength": 255},
            "status": {"type": "string", "readOnly": true, "description": "Status of the image",
                "enum": ["queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete", "deactivated"]},
            "visibility": {"type": "string", "description": "Scope of image accessibility", "enum": ["community", "public", "private", "shared"]},
            "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
            "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list response."},
            "checksum": {"type": ["null", "string"], "readOnly": true, "description": "md5 hash of image contents.", "maxLength": 32},
            "os_hash_algo": {"type": ["null", "string"], "readOnly": true, "description": "Algorithm to calculate the os_hash_value", "maxLength": 64},
            "os_hash_value": {"type": ["null", "string"], "readOnly": true, "description": "Hexdigest of the image contents using the algorithm specified by the os_hash_algo", "maxLength": 128},
            "owner": {"type": ["null", "string"], "description": "Owner of the image", "maxLength": 255},
            "size": {"type": ["null", "integer"], "readOnly": true, "description": "Size of image file in bytes"},
            "virtual_size": {"type": ["null", "integer"], "readOnly": true, "description": "Virtual size of image in bytes"},
            "container_format": {"type": ["null", "string"], "description": "Format of the container", "enum": nullable_enum(CONTAINER_FORMATS)},
            "disk_format": {"type": ["null", "string"], "description": "Format of the disk", "enum": nullable_enum(DISK_FORMATS)},
            "created_at": {"type": "string", "readOnly": true, "description": "Date and time of image registration"},
            "updated_at": {"type": "string", "readOnly": true, "description": "Date and time of the last image modification"},
            "tags": {"type": "array", "description": "List of strings related to the image", "items": {"type": "string", "maxLength": 255}},
            "direct_url": {"type": "string", "readOnly": true, "description": "URL to access the image file kept in external store"},
            "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
            "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
            "self": {"type": "string", "readOnly": true, "description": "An image self url"},
            "file": {"type": "string", "readOnly": true, "description": "An image file url"},
            "stores": {"type": "string", "readOnly": true, "description": "Store in which image data resides."},
            "schema": {"type": "string", "readOnly": true, "description": "An image schema url"},
            "locations": {"type": "array", "description": "A set of URLs to access the image file kept in external store",
                "items": {"type": "object", "properties": {"url": {"type": "string", "maxLength": 255}, "metadata": {"type": "object"}},
                    "required": ["url", "metadata"]}},
            "kernel_id": {"type": ["null", "string"], "pattern": UUID_PATTERN, "is_base": false,
                "description": "ID of image stored in Glance that should be used as the kernel when booting an AMI-style image."},
            "ramdisk_id": {"type": ["null", "string"], "pattern": UUID_PATTERN, "is_base": false,
                "description": "ID of image stored in Glance that should be used as the ramdisk when booting an AMI-style image."},
            "instance_uuid": {"type": "string", "is_base": false, "description": "Metadata which can be used to record which instance this image is associated with."},
            "architecture": {"type": "string", "is_base": false, "description": "Operating system architecture"},
            "os_distro": {"type": "string", "is_base": false, "description": "Common name of operating system distribution"},
            "os_version": {"type": "string", "is_base": false, "description": "Operating system version as specified by the distributor."},
            "description": {"type": "string", "is_base": false, "description": "A human-readable string describing this image."},
            "cinder_encryption_key_id": {"type": "string", "is_base": false, "description": "Identifier of the encryption key for the Block Storage Service"},
            "cinder_encryption_key_deletion_policy": {"type": "string", "is_base": false, "enum": ["on_image_deletion", "do_not_delete"],
                "description": "States the condition under which the Image Service will delete the object associated with the 'cinder_encryption_key_id' image property."}
        },
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"}
        ]
    });
    schema["properties"]["deprecate_at"] = json!({"type": ["null", "string"],
        "description": "RFC 3339 time from which the image is deprecated: left out of default lists (listed with deprecated=true), still usable."});
    schema
}

pub fn member() -> Value {
    json!({
        "name": "member",
        "properties": {
            "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
            "image_id": {"type": "string", "description": "An identifier for the image", "pattern": UUID_PATTERN},
            "created_at": {"type": "string", "description": "Date and time of image member creation"},
            "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
            "status": {"type": "string", "description": "The status of this image member", "enum": ["pending", "accepted", "rejected"]},
            "schema": {"readOnly": true, "type": "string"}
        },
        "additionalProperties": false
    })
}

fn collection(name: &str, item: Value) -> Value {
    json!({
        "name": name,
        "properties": {
            name: {"type": "array", "items": item},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"}
        },
        "links": [
            {"rel": "first", "href": "{first}"},
            {"rel": "next", "href": "{next}"},
            {"rel": "describedby", "href": "{schema}"}
        ]
    })
}

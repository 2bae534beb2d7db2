//! Integration tests: the real server on port 0, driven through `ims-client`.
//! Modules mirror the URL tree.

mod admin_v1_store;
mod admin_v1_store_races;
mod audit_v1_events;
mod buckets_v1;
mod cluster;
mod common;
mod healthcheck_and_versions;
mod identity_v1;
mod identity_v1_quotas;
mod identity_v1_quotas_members;
mod kms_v1_keys;
mod postgres_catalog;
mod s3_store;
mod v1_cloudimages_export;
mod v1_cloudimages_favorites;
mod v1_cloudimages_nbd;
mod v1_cloudimages_quota;
mod v1_cloudimages_share_auto_accept;
mod v2_cloudimages;
mod v2_cloudimages_import;
mod v2_images;
mod v2_images_file;
mod v2_images_file_inspection;
mod v2_images_import;
mod v2_images_deprecation;
mod v2_images_encryption;
mod v2_images_list;
mod v2_images_members;
mod v2_images_tags_and_actions;
mod v2_info_and_schemas;
mod v2_tenants_and_error_forms;

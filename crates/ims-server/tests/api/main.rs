//! Integration tests: the real server on port 0, driven through `ims-client`.
//! Modules mirror the URL tree.

mod common;
mod healthcheck_and_versions;
mod identity_v1;
mod v2_cloudimages;
mod v2_images;
mod v2_images_file;
mod v2_images_file_inspection;
mod v2_images_list;
mod v2_images_members;
mod v2_images_tags_and_actions;
mod v2_info_and_schemas;
mod v2_tenants_and_error_forms;

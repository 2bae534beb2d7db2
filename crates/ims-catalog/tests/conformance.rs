//! The catalog conformance suite: every backend of `ims_catalog::Catalog` must pass every check.
//!
//! Each check is an `async fn check_xxx(backend: &Backend)` in one of the modules below, written only against
//! the `Catalog` trait objects (plus the backend's audit probe). `conformance_suite!(name, constructor)`
//! generates one `#[tokio::test]` per check for a backend; every backend (SQLite on a file, SQLite in memory,
//! PostgreSQL) is one invocation at the bottom of this file.

#[path = "conformance/audit.rs"]
mod audit;
#[path = "conformance/audit_trail.rs"]
mod audit_trail;
#[path = "conformance/compute.rs"]
mod compute;
#[path = "conformance/deprecation.rs"]
mod deprecation;
#[path = "conformance/encryption.rs"]
mod encryption;
#[path = "conformance/favorites.rs"]
mod favorites;
#[path = "conformance/nbd_exports.rs"]
mod nbd_exports;
#[path = "conformance/nodes.rs"]
mod nodes;
#[path = "conformance/filters.rs"]
mod filters;
#[path = "conformance/identity.rs"]
mod identity;
#[path = "conformance/image_stores.rs"]
mod image_stores;
#[path = "conformance/images.rs"]
mod images;
#[path = "conformance/ims.rs"]
mod ims;
#[path = "conformance/jobs.rs"]
mod jobs;
#[path = "conformance/lineage.rs"]
mod lineage;
#[path = "conformance/market.rs"]
mod market;
#[path = "conformance/member_limits.rs"]
mod member_limits;
#[path = "conformance/members.rs"]
mod members;
#[path = "conformance/metadefs.rs"]
mod metadefs;
#[path = "conformance/size_quota.rs"]
mod size_quota;
#[path = "conformance/recycle_bin.rs"]
mod recycle_bin;
#[path = "conformance/share_auto_accept.rs"]
mod share_auto_accept;
#[path = "conformance/sorting.rs"]
mod sorting;
#[path = "conformance/support.rs"]
mod support;
#[path = "conformance/visibility.rs"]
mod visibility;

use std::sync::Arc;

use ims_catalog::postgres::PostgresCatalog;
use ims_catalog::sqlite::SqliteCatalog;
use ims_testkit::postgres::PostgresCluster;
use support::Backend;

/// Generates `mod $backend { #[tokio::test] async fn check_xxx() ... }` running every check on a fresh
/// backend made by `$connect: impl Fn() -> impl Future<Output = Backend>`.
macro_rules! conformance_suite {
    ($backend:ident, $connect:expr) => {
        conformance_suite!(@checks $backend, $connect;
            images::check_create_and_get_round_trip,
            images::check_create_refuses_existing_id,
            images::check_get_missing_is_not_found,
            images::check_save_replaces_everything,
            images::check_save_is_compare_and_set,
            images::check_save_missing_is_not_found,
            images::check_concurrent_saves_one_wins,
            images::check_delete_hides_image_and_retires_id,
            images::check_usage_counts_live_images,
            images::check_live_manifests,
            recycle_bin::check_bin_hides_image_keeps_data_and_restores_it,
            recycle_bin::check_bin_refuses_protected_and_wrong_status,
            recycle_bin::check_bin_list_per_owner_in_binned_order_with_marker,
            recycle_bin::check_purge_is_final_and_releases_data,
            recycle_bin::check_restore_respects_quota,
            recycle_bin::check_bin_writes_are_audited,
            lineage::check_lineage_round_trips_through_create_and_save,
            lineage::check_any_state_reads_live_binned_and_deleted_images,
            image_stores::check_extra_stores_round_trip_through_create_save_and_list,
            image_stores::check_live_manifests_in_store_name_whole_store_ids,
            image_stores::check_images_out_of_the_default_store_are_not_its_roots,
            visibility::check_visibility_project_viewer,
            visibility::check_visibility_member_status,
            visibility::check_visibility_anonymous,
            visibility::check_visibility_admin,
            visibility::check_marker_must_be_visible,
            filters::check_filter_names_ids_owner,
            filters::check_filter_statuses_and_formats,
            filters::check_filter_protected_and_os_hidden,
            filters::check_filter_tags_and_properties,
            filters::check_filter_size,
            filters::check_filter_times,
            filters::check_filters_combine,
            filters::check_filter_ims_additions,
            sorting::check_default_sort_is_newest_first,
            sorting::check_sort_every_key_both_directions,
            sorting::check_paging_by_marker_single_keys,
            sorting::check_paging_by_marker_multiple_keys,
            sorting::check_paging_with_filters,
            sorting::check_unknown_marker_is_invalid,
            members::check_members_lifecycle,
            members::check_member_add_needs_live_image,
            members::check_members_go_with_final_deletion,
            identity::check_projects,
            identity::check_users,
            identity::check_roles,
            identity::check_tokens,
            identity::check_delete_project,
            audit::check_writes_are_audited,
            audit::check_failed_writes_are_not_audited,
            audit_trail::check_audit_chain_links_every_write,
            audit_trail::check_audit_empty_trail_verifies,
            audit_trail::check_audit_query_filters_and_pages,
            audit_trail::check_audit_concurrent_writers_keep_one_chain,
            ims::check_access_keys,
            ims::check_project_quotas,
            ims::check_create_within_quota,
            ims::check_resource_tags,
            ims::check_jobs,
            ims::check_os_versions,
            jobs::check_job_claims_oldest_of_known_types,
            jobs::check_job_concurrent_claims_never_share,
            jobs::check_job_heartbeat_and_finish_need_the_holder,
            jobs::check_job_fail_and_retry,
            jobs::check_job_cancel,
            jobs::check_job_take_over_stale,
            jobs::check_job_list_and_sub_jobs,
            jobs::check_job_with_image_change_is_atomic,
            encryption::check_kms_keys,
            encryption::check_encryption_domains_and_images,
            market::check_market_listings,
            market::check_market_subscriptions,
            market::check_market_images_in_lists,
            market::check_market_concurrent_subscribe_and_offshelf,
            metadefs::check_metadef_namespace_lifecycle,
            metadefs::check_metadef_creation_is_atomic,
            metadefs::check_metadef_listing_filters,
            metadefs::check_metadef_items,
            metadefs::check_metadef_tags_replace_or_append,
            metadefs::check_metadef_associations,
            favorites::check_favorites_lifecycle,
            favorites::check_favorites_skip_deleted_images,
            favorites::check_favorites_limit_holds_under_concurrency,
            nbd_exports::check_nbd_exports_lifecycle,
            compute::check_compute_servers_and_volumes_round_trip,
            compute::check_compute_create_server_is_atomic,
            compute::check_compute_server_firmware,
            compute::check_compute_attach_and_detach,
            compute::check_compute_delete_server,
            compute::check_compute_manifests_and_exports,
            nbd_exports::check_nbd_exports_need_a_live_image,
            nodes::check_nodes_register_list_and_heartbeat,
            nodes::check_nodes_drain_until_idle,
            nodes::check_nodes_silent_ones_are_forgotten,
            member_limits::check_member_add_within_limit,
            member_limits::check_member_limit_holds_under_concurrency,
            size_quota::check_save_within_size_quota,
            size_quota::check_size_quota_holds_under_concurrency,
            share_auto_accept::check_share_auto_accept,
            deprecation::check_deprecate_at_round_trips,
            deprecation::check_filter_deprecated,
        );
    };
    (@checks $backend:ident, $connect:expr; $($module:ident :: $check:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $check() {
                    let backend: $crate::support::Backend = ($connect)().await;
                    $crate::$module::$check(&backend).await;
                }
            )*
        }
    };
}

/// A SQLite file in a fresh temporary directory (in a subdirectory that does not exist yet).
async fn sqlite_file() -> Backend {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("data").join("ims.db").display());
    let db = SqliteCatalog::connect(&url).await.expect("open SQLite file");
    Backend::new(db.clone().into_catalog(), Arc::new(db), Some(dir))
}

/// A private in-memory SQLite database.
async fn sqlite_memory() -> Backend {
    let db = SqliteCatalog::connect("sqlite::memory:").await.expect("open SQLite in memory");
    Backend::new(db.clone().into_catalog(), Arc::new(db), None)
}

conformance_suite!(sqlite_file, crate::sqlite_file);
conformance_suite!(sqlite_memory, crate::sqlite_memory);

/// A fresh database on the test PostgreSQL server (the test command's shared one, else a private cluster).
async fn postgres() -> Backend {
    let server = PostgresCluster::shared_or_start().await.expect("a PostgreSQL server");
    let url = server.fresh_database().await.expect("a fresh PostgreSQL database");
    let db = PostgresCatalog::connect(&url).await.expect("open the PostgreSQL catalog");
    Backend::new(db.clone().into_catalog(), Arc::new(db), None).on_postgres(server)
}

conformance_suite!(postgres, crate::postgres);

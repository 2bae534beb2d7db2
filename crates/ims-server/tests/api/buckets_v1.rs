//! `/buckets/v1`: user buckets, their access rules, and streamed objects.

use ims_client::Role;

use crate::common::{pattern, status, TestServer};

#[tokio::test]
async fn objects_round_trip_and_list() {
    let server = TestServer::start().await;
    let alice = server.tenant("alice", Role::Member).await;
    let c = &alice.client;
    assert!(c.list_buckets().await.unwrap().is_empty());

    // A put creates the bucket for the caller's project; a multi-part object (over 8 MiB) round-trips.
    let big = pattern(9 * 1024 * 1024 + 123, 7);
    assert_eq!(c.put_object_bytes("images-a", "disks/big.raw", big.clone()).await.unwrap(), big.len() as u64);
    assert_eq!(c.put_object_bytes("images-a", "small.txt", b"hello".to_vec()).await.unwrap(), 5);
    assert_eq!(&c.get_object_bytes("images-a", "disks/big.raw").await.unwrap()[..], &big[..]);
    let buckets = c.list_buckets().await.unwrap();
    assert_eq!(buckets.len(), 1);
    assert_eq!((buckets[0].name.as_str(), buckets[0].owner.as_str()), ("images-a", alice.project_id.as_str()));

    let keys = |objects: Vec<ims_client::BucketObjectInfo>| objects.into_iter().map(|o| (o.key, o.size)).collect::<Vec<_>>();
    assert_eq!(
        keys(c.list_objects("images-a", None).await.unwrap()),
        [("disks/big.raw".to_string(), big.len() as u64), ("small.txt".to_string(), 5)]
    );
    assert_eq!(keys(c.list_objects("images-a", Some("disks")).await.unwrap()).len(), 1);

    // Replacing an object, deleting it.
    c.put_object_bytes("images-a", "small.txt", b"bye".to_vec()).await.unwrap();
    assert_eq!(&c.get_object_bytes("images-a", "small.txt").await.unwrap()[..], b"bye");
    c.delete_object("images-a", "small.txt").await.unwrap();
    assert_eq!(status(c.get_object_bytes("images-a", "small.txt").await), 404);
    assert_eq!(status(c.delete_object("images-a", "small.txt").await), 404);

    // Explicit creation: 201, then 409.
    assert_eq!(c.create_bucket("images-b").await.unwrap().owner, alice.project_id);
    assert_eq!(status(c.create_bucket("images-b").await), 409);
}

#[tokio::test]
async fn bad_names_and_keys_are_refused() {
    let server = TestServer::start().await;
    let c = &server.tenant("alice", Role::Member).await.client;
    for bucket in ["ab", "Upper", "_owners", "-dash", "has_underscore"] {
        assert_eq!(status(c.put_object_bytes(bucket, "k", b"x".to_vec()).await), 400, "bucket {bucket:?}");
    }
    // Sent encoded (a URL cannot carry them as path segments): the server refuses them.
    for key in ["a%2F..%2Fb", ".%2Fa", "a%2F%2Fb", "a%2F.."] {
        let response = c.raw(reqwest::Method::PUT, &format!("/buckets/v1/good-bucket/objects/{key}")).body("x").send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "key {key:?}");
    }
    assert!(c.put_object_bytes("good-bucket", "a/../b", b"x".to_vec()).await.is_err(), "the client refuses them too");
    assert!(c.list_buckets().await.unwrap().is_empty(), "refused writes create nothing");
}

#[tokio::test]
async fn buckets_belong_to_their_project_unless_granted() {
    let server = TestServer::start_with(|s| {
        s.bucket_grants.insert("shared-isos".into(), vec!["placeholder".into()]);
    })
    .await;
    let alice = server.tenant("alice", Role::Member).await;
    let bob = server.tenant("bob", Role::Member).await;
    let reader = server.tenant("carol", Role::Reader).await;
    alice.client.put_object_bytes("alice-private", "disk.raw", b"secret".to_vec()).await.unwrap();

    // Another project sees nothing of it, cannot read, write or list it, nor take its name.
    assert!(bob.client.list_buckets().await.unwrap().is_empty());
    assert_eq!(status(bob.client.get_object_bytes("alice-private", "disk.raw").await), 404);
    assert_eq!(status(bob.client.list_objects("alice-private", None).await), 404);
    assert_eq!(status(bob.client.put_object_bytes("alice-private", "x", b"x".to_vec()).await), 404);
    assert_eq!(status(bob.client.create_bucket("alice-private").await), 409);
    assert_eq!(&alice.client.get_object_bytes("alice-private", "disk.raw").await.unwrap()[..], b"secret");

    // Admins see every bucket; readers cannot write.
    assert_eq!(server.admin.list_buckets().await.unwrap().len(), 1);
    assert_eq!(&server.admin.get_object_bytes("alice-private", "disk.raw").await.unwrap()[..], b"secret");
    assert_eq!(status(reader.client.put_object_bytes("carol-bucket", "x", b"x".to_vec()).await), 403);
}

#[tokio::test]
async fn operators_grant_buckets_to_other_projects() {
    let server = TestServer::start_with(|s| {
        s.bucket_grants.insert("team-isos".into(), vec!["bob".into()]);
    })
    .await;
    let alice = server.tenant("alice", Role::Member).await;
    let bob = server.tenant("bob", Role::Member).await;
    let carol = server.tenant("carol", Role::Member).await;
    alice.client.put_object_bytes("team-isos", "a.iso", b"iso".to_vec()).await.unwrap();
    alice.client.put_object_bytes("alice-only", "b.iso", b"b".to_vec()).await.unwrap();

    // The grant (by project name) lets bob list, read and write that bucket, and no other.
    let names: Vec<String> = bob.client.list_buckets().await.unwrap().into_iter().map(|b| b.name).collect();
    assert_eq!(names, ["team-isos"]);
    assert_eq!(&bob.client.get_object_bytes("team-isos", "a.iso").await.unwrap()[..], b"iso");
    bob.client.put_object_bytes("team-isos", "from-bob.iso", b"bob".to_vec()).await.unwrap();
    assert_eq!(bob.client.list_objects("team-isos", None).await.unwrap().len(), 2);
    assert_eq!(status(bob.client.get_object_bytes("alice-only", "b.iso").await), 404);
    assert_eq!(status(carol.client.get_object_bytes("team-isos", "a.iso").await), 404);
}

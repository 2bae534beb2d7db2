use std::time::Duration;

use bytes::Bytes;
use ims_client::Role;
use md5::{Digest, Md5};
use reqwest::Method;
use sha2::Sha512;

use crate::common::{chunk_files, pattern, raw_image, status, TestServer};

fn hex_md5(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}


#[tokio::test]
async fn upload_and_download_round_trip_with_checksums() {
    let s = TestServer::start().await;
    let mut data = pattern(5 << 20, 1);
    data.extend(std::iter::repeat(0u8).take(3 << 20));
    data.extend(pattern(777, 2));
    let img = s.admin.create_image(&raw_image("disk")).await.unwrap();
    s.admin.upload_bytes(&img.id, data.clone()).await.unwrap();

    let shown = s.admin.get_image(&img.id).await.unwrap();
    assert_eq!(shown.status, "active");
    assert_eq!(shown.size, Some(data.len() as u64));
    assert_eq!(shown.virtual_size, Some(data.len() as u64), "raw: the file is the disk");
    assert_eq!(shown.checksum.as_deref(), Some(hex_md5(&data).as_str()));
    assert_eq!(shown.os_hash_algo.as_deref(), Some("sha512"));
    assert_eq!(shown.os_hash_value.as_deref(), Some(hex::encode(Sha512::digest(&data)).as_str()));

    let download = s.admin.download(&img.id, None).await.unwrap();
    assert_eq!(download.status, 200);
    assert_eq!(download.content_md5.as_deref(), Some(hex_md5(&data).as_str()));
    assert_eq!(download.content_length, Some(data.len() as u64));
    assert_eq!(download.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test]
async fn chunked_uploads_without_a_size_are_accepted() {
    let s = TestServer::start().await;
    let data = pattern(3 << 20, 3);
    let img = s.admin.create_image(&raw_image("chunked")).await.unwrap();
    let pieces: Vec<Result<Bytes, std::io::Error>> =
        data.chunks(100_003).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    s.admin.upload_stream(&img.id, futures::stream::iter(pieces), None).await.unwrap();
    let got = s.admin.download(&img.id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), data.as_slice());
}

#[tokio::test]
async fn ranges_suffixes_and_unsatisfiable_ranges() {
    let s = TestServer::start().await;
    let data = pattern(2 << 20, 4);
    let img = s.admin.create_image(&raw_image("r")).await.unwrap();
    s.admin.upload_bytes(&img.id, data.clone()).await.unwrap();

    let d = s.admin.download_with_range(&img.id, Some("bytes=1000-1999999")).await.unwrap();
    assert_eq!(d.status, 206);
    assert_eq!(d.content_range.as_deref(), Some(format!("bytes 1000-1999999/{}", data.len()).as_str()));
    assert_eq!(d.bytes().await.unwrap().as_ref(), &data[1000..2_000_000]);

    let d = s.admin.download_with_range(&img.id, Some("bytes=-10")).await.unwrap();
    assert_eq!(d.status, 206);
    assert_eq!(d.bytes().await.unwrap().as_ref(), &data[data.len() - 10..]);

    let r = s
        .raw(Method::GET, &format!("/v2/images/{}/file", img.id))
        .header("range", format!("bytes={}-", data.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
}

#[tokio::test]
async fn an_image_without_data_downloads_as_204() {
    let s = TestServer::start().await;
    let img = s.admin.create_image(&raw_image("empty")).await.unwrap();
    assert_eq!(s.admin.download(&img.id, None).await.unwrap().status, 204);
}

#[tokio::test]
async fn size_mismatch_is_400_and_the_image_stays_queued() {
    let s = TestServer::start().await;
    let img = s.admin.create_image(&raw_image("m")).await.unwrap();
    let data = pattern(1 << 20, 5);
    let r = s
        .raw(Method::PUT, &format!("/v2/images/{}/file", img.id))
        .header("content-type", "application/octet-stream")
        .header("x-openstack-image-size", "12345")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let shown = s.admin.get_image(&img.id).await.unwrap();
    assert_eq!(shown.status, "queued");
    assert_eq!(shown.size, None);
    assert_eq!(shown.checksum, None);
    // A correct upload still works afterwards.
    s.admin.upload_bytes(&img.id, data).await.unwrap();
}

#[tokio::test]
async fn uploading_to_an_active_image_is_409_and_keeps_its_data() {
    let s = TestServer::start().await;
    let img = s.admin.create_image(&raw_image("a")).await.unwrap();
    let data = pattern(100_000, 6);
    s.admin.upload_bytes(&img.id, data.clone()).await.unwrap();
    assert_eq!(status(s.admin.upload_bytes(&img.id, pattern(10, 7)).await), 409);
    let got = s.admin.download(&img.id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), data.as_slice());
}

#[tokio::test]
async fn uploads_over_the_size_cap_are_413() {
    let s = TestServer::start_with(|settings| settings.image_size_cap = 1 << 20).await;
    let img = s.admin.create_image(&raw_image("big")).await.unwrap();
    assert_eq!(status(s.admin.upload_bytes(&img.id, pattern((1 << 20) + 1, 8)).await), 413);
    let pieces: Vec<Result<Bytes, std::io::Error>> = (0..3).map(|i| Ok(Bytes::from(pattern(600_000, i)))).collect();
    assert_eq!(status(s.admin.upload_stream(&img.id, futures::stream::iter(pieces), None).await), 413);
    assert_eq!(s.admin.get_image(&img.id).await.unwrap().status, "queued");
    s.admin.upload_bytes(&img.id, pattern(1 << 20, 9)).await.unwrap();
}

#[tokio::test]
async fn uploads_need_formats_and_octet_stream() {
    let s = TestServer::start().await;
    let img = s.admin.create_image(&ims_client::CreateImage::named("no-formats")).await.unwrap();
    assert_eq!(status(s.admin.upload_bytes(&img.id, pattern(10, 1)).await), 400);
    let img = s.admin.create_image(&raw_image("ct")).await.unwrap();
    let r = s
        .raw(Method::PUT, &format!("/v2/images/{}/file", img.id))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

#[tokio::test]
async fn an_interrupted_upload_returns_the_image_to_queued() {
    let s = TestServer::start().await;
    let img = s.admin.create_image(&raw_image("cut")).await.unwrap();
    let first = Bytes::from(pattern(2 << 20, 10));
    let body = futures::stream::iter(vec![
        Ok::<Bytes, std::io::Error>(first),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "client went away")),
    ]);
    let result = s.admin.upload_stream(&img.id, body, Some(8 << 20)).await;
    assert!(result.is_err());
    let mut status = String::new();
    for _ in 0..100 {
        status = s.admin.get_image(&img.id).await.unwrap().status;
        if status == "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "queued");
    let shown = s.admin.get_image(&img.id).await.unwrap();
    assert_eq!((shown.size, shown.checksum), (None, None), "nothing half-visible");
    assert_eq!(s.admin.download(&img.id, None).await.unwrap().status, 204);
}

#[tokio::test]
async fn identical_uploads_store_no_new_chunks() {
    let s = TestServer::start().await;
    let data = pattern(6 << 20, 11);
    let first = s.admin.create_image(&raw_image("one")).await.unwrap();
    s.admin.upload_bytes(&first.id, data.clone()).await.unwrap();
    let before = chunk_files(&s.data_dir).len();
    assert!(before > 0);
    let second = s.admin.create_image(&raw_image("two")).await.unwrap();
    s.admin.upload_bytes(&second.id, data.clone()).await.unwrap();
    assert_eq!(chunk_files(&s.data_dir).len(), before, "the same file writes no new chunk");
    let got = s.admin.download(&second.id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), data.as_slice());
}

#[tokio::test]
async fn deactivated_images_download_for_admins_only() {
    let s = TestServer::start().await;
    let t = s.tenant("owner", Role::Member).await;
    let img = t.client.create_image(&raw_image("d")).await.unwrap();
    t.client.upload_bytes(&img.id, pattern(1000, 12)).await.unwrap();
    // The owner's project may deactivate (Glance's policy); reading the data is then for admins only.
    t.client.deactivate(&img.id).await.unwrap();
    assert_eq!(t.client.get_image(&img.id).await.unwrap().status, "deactivated");
    assert_eq!(status(t.client.download(&img.id, None).await), 403);
    assert_eq!(s.admin.download(&img.id, None).await.unwrap().status, 200);
    s.admin.reactivate(&img.id).await.unwrap();
    assert_eq!(t.client.download(&img.id, None).await.unwrap().status, 200);
}

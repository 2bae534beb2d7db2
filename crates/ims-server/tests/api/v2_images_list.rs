use std::collections::HashSet;

use ims_client::{CreateImage, ListParams, Role};
use reqwest::Method;

use crate::common::{pattern, raw_image, status, TestServer};

#[tokio::test]
async fn paging_by_marker_visits_every_image_once_in_order() {
    let s = TestServer::start().await;
    for i in 0..23 {
        s.admin.create_image(&raw_image(&format!("img-{:02}", (i * 7) % 23))).await.unwrap();
    }
    for sort in ["name:asc", "name:desc", "created_at:desc", "status:asc,name:desc"] {
        let params = ListParams { sort: Some(sort.into()), limit: Some(5), ..Default::default() };
        let first = s.admin.list_images(&params).await.unwrap();
        assert_eq!(first.images.len(), 5);
        assert!(first.next.as_deref().unwrap().contains("marker="));
        assert!(first.next.as_deref().unwrap().contains("limit=5"), "next keeps the query");
        let all = s.admin.list_all_images(&params).await.unwrap();
        assert_eq!(all.len(), 23, "{sort}");
        let ids: HashSet<_> = all.iter().map(|i| i.id.clone()).collect();
        assert_eq!(ids.len(), 23, "{sort}: no image twice");
        if sort == "name:asc" {
            let names: Vec<_> = all.iter().map(|i| i.name.clone().unwrap()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted);
        }
    }
    let default = s.admin.list_images(&ListParams::default()).await.unwrap();
    assert_eq!(default.images.len(), 23, "default limit is 25");
    assert!(default.next.is_none());
}

#[tokio::test]
async fn filters_combine() {
    let s = TestServer::start().await;
    let a = s.admin.create_image(&CreateImage { tags: vec!["x".into(), "y".into()], ..raw_image("alpha") }).await.unwrap();
    let mut b = raw_image("beta");
    b.tags = vec!["x".into()];
    b.properties.insert("os_distro".into(), "debian".into());
    b.disk_format = Some("ami".into());
    b.container_format = Some("ami".into());
    let b = s.admin.create_image(&b).await.unwrap();
    s.admin.upload_bytes(&b.id, pattern(5000, 1)).await.unwrap();
    let c = s.admin.create_image(&CreateImage { protected: Some(true), visibility: Some("private".into()), ..raw_image("gamma") }).await.unwrap();
    let hidden = s.admin.create_image(&CreateImage { os_hidden: Some(true), ..raw_image("hidden") }).await.unwrap();

    let names = |list: Vec<ims_client::Image>| {
        let mut n: Vec<String> = list.into_iter().map(|i| i.name.unwrap()).collect();
        n.sort();
        n
    };
    let list = |p: ListParams| {
        let client = s.admin.clone();
        async move { client.list_all_images(&p).await.unwrap() }
    };
    assert_eq!(names(list(ListParams { tags: vec!["x".into()], ..Default::default() }).await), ["alpha", "beta"]);
    assert_eq!(names(list(ListParams { tags: vec!["x".into(), "y".into()], ..Default::default() }).await), ["alpha"]);
    assert_eq!(names(list(ListParams { name: Some("beta".into()), ..Default::default() }).await), ["beta"]);
    assert_eq!(names(list(ListParams { status: Some("active".into()), ..Default::default() }).await), ["beta"]);
    assert_eq!(names(list(ListParams { disk_format: Some("ami".into()), ..Default::default() }).await), ["beta"]);
    assert_eq!(names(list(ListParams { protected: Some(true), ..Default::default() }).await), ["gamma"]);
    assert_eq!(names(list(ListParams { visibility: Some("private".into()), ..Default::default() }).await), ["gamma"]);
    assert_eq!(names(list(ListParams { properties: vec![("os_distro".into(), "debian".into())], ..Default::default() }).await), ["beta"]);
    assert_eq!(names(list(ListParams { extra: vec![("size_min".into(), "4000".into())], ..Default::default() }).await), ["beta"]);
    assert_eq!(names(list(ListParams { extra: vec![("size_max".into(), "4000".into())], ..Default::default() }).await), Vec::<String>::new());
    assert_eq!(names(list(ListParams { os_hidden: Some(true), ..Default::default() }).await), ["hidden"]);
    assert!(!names(list(ListParams::default()).await).contains(&"hidden".to_string()), "hidden images are not listed by default");
    let by_in = ListParams { name: Some("in:alpha,gamma".into()), ..Default::default() };
    assert_eq!(names(list(by_in).await), ["alpha", "gamma"]);
    let created = s.admin.get_image(&a.id).await.unwrap().created_at;
    let since = ListParams { extra: vec![("created_at".into(), format!("gte:{created}"))], ..Default::default() };
    assert_eq!(list(since).await.len(), 3, "hidden images stay out");
    let before = ListParams { extra: vec![("created_at".into(), format!("lt:{created}"))], ..Default::default() };
    assert_eq!(list(before).await.len(), 0);
    let _ = (c, hidden);
}

#[tokio::test]
async fn bad_queries_are_400() {
    let s = TestServer::start().await;
    for q in [
        "sort=name:asc&sort_key=status",
        "sort_key=nonsense",
        "sort_dir=sideways",
        "limit=-1",
        "limit=x",
        "marker=00000000-0000-0000-0000-000000000000",
        "marker=zzz",
        "status=bogus",
        "visibility=bogus",
        "size_min=x",
        "created_at=gt:notatime",
        "changes-since=2020-01-01T00:00:00Z",
    ] {
        let r = s.raw(Method::GET, &format!("/v2/images?{q}")).send().await.unwrap();
        assert_eq!(r.status(), 400, "{q}");
    }
}

#[tokio::test]
async fn lists_show_only_what_the_caller_may_see() {
    let s = TestServer::start().await;
    let a = s.tenant("a", Role::Member).await;
    let b = s.tenant("b", Role::Member).await;
    let private = a.client.create_image(&CreateImage { visibility: Some("private".into()), ..raw_image("a-private") }).await.unwrap();
    a.client.create_image(&CreateImage { visibility: Some("community".into()), ..raw_image("a-community") }).await.unwrap();
    s.admin.create_image(&CreateImage { visibility: Some("public".into()), ..raw_image("gold") }).await.unwrap();

    let names = |list: Vec<ims_client::Image>| list.into_iter().map(|i| i.name.unwrap()).collect::<HashSet<_>>();
    let seen = names(b.client.list_all_images(&ListParams::default()).await.unwrap());
    assert_eq!(seen, HashSet::from(["gold".to_string()]));
    let community = ListParams { visibility: Some("community".into()), ..Default::default() };
    assert_eq!(names(b.client.list_all_images(&community).await.unwrap()), HashSet::from(["a-community".to_string()]));
    let all = ListParams { visibility: Some("all".into()), ..Default::default() };
    assert_eq!(names(b.client.list_all_images(&all).await.unwrap()).len(), 2);
    let marker = ListParams { marker: Some(private.id.clone()), ..Default::default() };
    assert_eq!(status(b.client.list_images(&marker).await), 400, "another project's image is no marker");
    let admin_all = names(s.admin.list_all_images(&ListParams::default()).await.unwrap());
    assert!(admin_all.contains("a-private"), "admins see every project's images");
}

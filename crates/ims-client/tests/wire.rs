//! What the client puts on the wire, checked against a canned in-process HTTP server (the real
//! server's integration tests live with the server).

use std::sync::{Arc, Mutex};

use ims_client::{Client, ClientError, CreateImage, ListParams, MemberStatus, PatchOp, Role};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Reply = (u16, Vec<(&'static str, String)>, Vec<u8>);

/// Serves `handler` on a random port; returns the base URL and the log of requests.
async fn serve(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            let (handler, log) = (handler.clone(), log2.clone());
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                let mut line = String::new();
                r.read_line(&mut line).await.unwrap();
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap().to_string();
                let path = parts.next().unwrap().to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).await.unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap();
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
                let mut req = Request { method, path, headers, body: Vec::new() };
                if req.header("transfer-encoding") == Some("chunked") {
                    loop {
                        let mut size = String::new();
                        r.read_line(&mut size).await.unwrap();
                        let n = usize::from_str_radix(size.trim(), 16).unwrap();
                        let mut chunk = vec![0; n + 2];
                        r.read_exact(&mut chunk).await.unwrap();
                        if n == 0 {
                            break;
                        }
                        req.body.extend_from_slice(&chunk[..n]);
                    }
                } else if let Some(n) = req.header("content-length").map(|v| v.parse::<usize>().unwrap()) {
                    req.body.resize(n, 0);
                    r.read_exact(&mut req.body).await.unwrap();
                }
                let (status, headers, body) = handler(&req);
                log.lock().unwrap().push(req);
                let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                w.write_all(out.as_bytes()).await.unwrap();
                w.write_all(&body).await.unwrap();
                w.shutdown().await.ok();
            });
        }
    });
    (format!("http://{addr}"), log)
}

fn image(id: &str) -> Value {
    json!({"id": id, "name": id, "status": "queued", "visibility": "shared", "protected": false,
           "os_hidden": false, "tags": [], "min_disk": 0, "min_ram": 0,
           "self": format!("/v2/images/{id}"), "file": format!("/v2/images/{id}/file"), "schema": "/v2/schemas/image"})
}

fn json_reply(status: u16, v: Value) -> Reply {
    (status, vec![("Content-Type", "application/json".into())], serde_json::to_vec(&v).unwrap())
}

#[tokio::test]
async fn images_on_the_wire() {
    let (url, log) = serve(|req| match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/v2/images") => json_reply(201, image("a")),
        ("GET", "/v2/images?name=x&tag=t1&tag=t2&limit=1") => {
            json_reply(200, json!({"images": [image("a")], "next": "/v2/images?name=x&tag=t1&tag=t2&limit=1&marker=a", "first": "/v2/images"}))
        }
        ("GET", "/v2/images?name=x&tag=t1&tag=t2&limit=1&marker=a") => json_reply(200, json!({"images": [image("b")]})),
        ("PATCH", "/v2/images/a") => json_reply(200, image("a")),
        ("PUT", "/v2/images/a/file") => (204, vec![], vec![]),
        ("GET", "/v2/images/a/file") => (206, vec![("Content-MD5", "abc".into()), ("Content-Range", "bytes 2-4/10".into())], b"cde".to_vec()),
        ("PUT", "/v2/images/a/tags/x%20y") => (204, vec![], vec![]),
        ("PUT", "/v2/images/a/members/p2") => json_reply(200, json!({"image_id": "a", "member_id": "p2", "status": "accepted", "created_at": "t", "updated_at": "t"})),
        ("GET", "/v2/images/missing") => json_reply(404, json!({"message": "No image found with ID missing<br /><br />\n\n", "code": "404 Not Found", "title": "Not Found"})),
        _ => (500, vec![], format!("unexpected {} {}", req.method, req.path).into_bytes()),
    })
    .await;
    let c = Client::new(&url, "tok").unwrap();

    let created = c.create_image(&CreateImage::named("a")).await.unwrap();
    assert_eq!(created.id, "a");

    let params = ListParams { name: Some("x".into()), tags: vec!["t1".into(), "t2".into()], limit: Some(1), ..Default::default() };
    let all = c.list_all_images(&params).await.unwrap();
    assert_eq!(all.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);

    c.update_image("a", &[PatchOp::replace("name", "n")]).await.unwrap();
    c.upload_bytes("a", b"0123456789".to_vec()).await.unwrap();
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"abc"))]);
    c.upload_stream("a", stream, None).await.unwrap();

    let dl = c.download("a", Some((2, Some(4)))).await.unwrap();
    assert_eq!((dl.status, dl.content_length, dl.content_md5.as_deref()), (206, Some(3), Some("abc")));
    assert_eq!(dl.content_range.as_deref(), Some("bytes 2-4/10"));
    assert_eq!(&dl.bytes().await.unwrap()[..], b"cde");

    c.add_tag("a", "x y").await.unwrap();
    let m = c.update_member_status("a", "p2", MemberStatus::Accepted).await.unwrap();
    assert_eq!(m.status, "accepted");

    match c.get_image("missing").await {
        Err(ClientError::Http { status: 404, message }) => assert_eq!(message, "No image found with ID missing"),
        other => panic!("unexpected {other:?}"),
    }

    let log = log.lock().unwrap().clone();
    for req in &log {
        assert_eq!(req.header("x-auth-token"), Some("tok"), "{} {}", req.method, req.path);
        assert_eq!(req.header("accept"), Some("application/json"));
    }
    let find = |m: &str, p: &str| log.iter().filter(|r| r.method == m && r.path == p).cloned().collect::<Vec<_>>();
    assert_eq!(find("POST", "/v2/images")[0].json(), json!({"name": "a"}));
    let patch = &find("PATCH", "/v2/images/a")[0];
    assert_eq!(patch.header("content-type"), Some("application/openstack-images-v2.1-json-patch"));
    assert_eq!(patch.json(), json!([{"op": "replace", "path": "/name", "value": "n"}]));
    let uploads = find("PUT", "/v2/images/a/file");
    assert_eq!(uploads[0].header("x-openstack-image-size"), Some("10"));
    assert_eq!(uploads[0].header("content-type"), Some("application/octet-stream"));
    assert_eq!(uploads[0].body, b"0123456789");
    assert_eq!(uploads[1].header("x-openstack-image-size"), None);
    assert_eq!(uploads[1].body, b"abc");
    assert_eq!(find("GET", "/v2/images/a/file")[0].header("range"), Some("bytes=2-4"));
    assert_eq!(find("PUT", "/v2/images/a/members/p2")[0].json(), json!({"status": "accepted"}));
}

#[tokio::test]
async fn identity_on_the_wire() {
    let (url, log) = serve(|req| match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/identity/v1/projects") => json_reply(201, json!({"project": {"id": "p1", "name": "demo", "created_at": "t"}})),
        ("POST", "/identity/v1/users") => json_reply(201, json!({
            "user": {"id": "u1", "name": "alice", "created_at": "t", "project_id": "p1", "role": "reader"},
            "token": {"id": "t1", "token": "s", "user_id": "u1", "project_id": "p1", "created_at": "t", "expires_at": null}})),
        ("POST", "/identity/v1/tokens") => json_reply(201, json!({"token": {"id": "t2", "token": "s2", "user_id": "u1", "project_id": "p1", "created_at": "t", "expires_at": null}})),
        ("DELETE", "/identity/v1/tokens/t2") | ("DELETE", "/identity/v1/projects/demo") => (204, vec![], vec![]),
        ("GET", "/identity/v1/auth") => json_reply(200, json!({"user": {"id": "u1", "name": "alice"}, "project": {"id": "p1", "name": "demo"}, "role": "reader", "is_admin": false})),
        ("GET", "/identity/v1/projects/nope") => json_reply(404, json!({"error_code": "IMS.0404", "error_msg": "no project nope"})),
        _ => (500, vec![], vec![]),
    })
    .await;
    let c = Client::new(&url, "admin").unwrap();
    assert_eq!(c.create_project("demo").await.unwrap().id, "p1");
    let created = c.create_user("alice", "demo", Role::Reader).await.unwrap();
    assert_eq!(created.token.token.as_deref(), Some("s"));
    let alice = c.with_token(created.token.token.unwrap());
    let me = alice.whoami().await.unwrap();
    assert_eq!((me.project.id.as_str(), me.role.as_str(), me.is_admin), ("p1", "reader", false));
    let t = c.create_token("alice", "demo").await.unwrap();
    c.revoke_token(&t.id).await.unwrap();
    c.delete_project("demo").await.unwrap();
    let err = c.get_project("nope").await.unwrap_err();
    assert_eq!(err.to_string(), "no project nope (HTTP 404)");

    let log = log.lock().unwrap().clone();
    assert_eq!(log[1].json(), json!({"name": "alice", "project": "demo", "role": "reader"}));
    assert_eq!(log[2].header("x-auth-token"), Some("s"));
    assert_eq!(log[3].json(), json!({"user": "alice", "project": "demo"}));
}

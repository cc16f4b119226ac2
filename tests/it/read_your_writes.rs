//! The most repeated complaint about identity servers: "I created it and the next GET
//! said 404". Here every acknowledged write is visible to the very next read.

use crate::helpers::TestApp;
use serde_json::json;

#[test]
fn every_client_reads_its_own_write_at_once() {
    let app = TestApp::spawn();
    let clients = 16;
    let per_client = 150;
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let admin = app.admin();
            std::thread::spawn(move || {
                for i in 0..per_client {
                    let name = format!("ryw-{c}-{i}");
                    let desc = format!("written by client {c}, round {i}");
                    let r = admin.post(
                        "/access/api/v2/groups",
                        &json!({"name": name, "description": desc}),
                    );
                    assert_eq!(r.status, 201, "{}", r.text);
                    let seq: u64 = r.header("x-gatehouse-seq").unwrap().parse().unwrap();
                    let g = admin.get(&format!("/access/api/v2/groups/{name}"));
                    assert_eq!(g.status, 200, "read after write of {name} (seq {seq})");
                    assert_eq!(g.json()["description"], desc.as_str());
                    // An update is visible at once too.
                    let changed = format!("{desc} (changed)");
                    let r = admin.patch(
                        &format!("/access/api/v2/groups/{name}"),
                        &json!({"description": changed}),
                    );
                    assert_eq!(r.status, 200);
                    assert!(r.header("x-gatehouse-seq").unwrap().parse::<u64>().unwrap() > seq);
                    let g = admin.get(&format!("/access/api/v2/groups/{name}"));
                    assert_eq!(
                        g.json()["description"],
                        changed.as_str(),
                        "stale read of {name}"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client saw a stale or missing read");
    }
    let list = app.admin().get("/access/api/v2/groups?limit=99999").json();
    assert_eq!(
        list["groups"].as_array().unwrap().len(),
        clients * per_client
    );
}

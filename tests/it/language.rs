//! Item languages through `build`: a partner that declares one language for its whole
//! feed but writes some items in others gets each item filed by its own language when
//! detection is sure (`normalise::lang::choose`); short items keep the declaration, and
//! an item's own `xml:lang` wins over both.

use serde_json::Value;

use crate::support::{Project, Route, TestServer};

const DE: &str = "Die Stadt und ihre Bürgerinnen und Bürger arbeiten gemeinsam an der Prävention von Kriminalität in den Quartieren. Der kommunale Präventionsrat hat dazu ein Programm beschlossen, das Nachbarschaften stärkt.";
const FR: &str = "Les villes européennes travaillent avec leurs habitants à la prévention de la délinquance dans les quartiers. Le réseau a adopté un programme qui renforce les liens de voisinage.";
const EN: &str = "Cities across Europe are working together with their residents on the prevention of crime in their districts. The network has adopted a programme that strengthens neighbourhoods.";
const FR2: &str = "Le forum européen pour la sécurité urbaine réunit des villes de toute l'Europe. Ses membres échangent leurs expériences et publient des guides pour les élus et les services municipaux.";
const DE2: &str = "Das Forum vereint Städte aus ganz Europa. Seine Mitglieder tauschen ihre Erfahrungen aus und veröffentlichen Leitfäden für die kommunale Politik und die Verwaltung in den Rathäusern.";
/// English about German institutions: trigrams alone call it German.
const EN_NAMES: &str = "The members of the Deutsch-Europäisches Forum für Urbane Sicherheit met at the Rathaus Stuttgart and elected a new board for the Landespräventionsrat Niedersachsen network.";

fn rss_item(n: usize, title: &str, text: &str) -> String {
    format!(
        "<item><title>{title}</title><link>https://partner.example/{n}</link><guid>https://partner.example/{n}</guid>\
         <pubDate>Mon, 0{n} Oct 2017 12:00:00 +0000</pubDate><description>{text}</description></item>"
    )
}

fn languages(p: &Project) -> std::collections::BTreeMap<String, String> {
    let feed: Value = serde_json::from_str(&p.read("public/feed.json")).unwrap();
    feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["title"].as_str().unwrap().to_owned(),
                i["language"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

fn project(server: &TestServer) -> Project {
    let p = Project::new();
    p.config(&format!(
        "[[source]]\nid = \"efus\"\nkind = \"feed\"\nurl = \"{}\"\n\n[[source]]\nid = \"atom\"\nkind = \"feed\"\nurl = \"{}\"\n",
        server.url("/efus.xml"),
        server.url("/atom.xml")
    ));
    p
}

#[test]
fn a_feed_declaring_one_language_gets_each_item_filed_by_its_own() {
    let server = TestServer::start();
    let items = [
        rss_item(1, "Annual report online", "Now available."),
        rss_item(2, "Working together", EN),
        rss_item(3, "Prévention dans les quartiers", FR),
        rss_item(4, "Prävention in den Quartieren", DE),
        rss_item(5, "New board elected", EN_NAMES),
        rss_item(6, "Rapport annuel", "En ligne."),
    ]
    .concat();
    server.route(
        "/efus.xml",
        Route::ok(
            "application/rss+xml",
            format!("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Efus</title><link>https://partner.example/</link><description>d</description><language>en-GB</language>{items}</channel></rss>"),
        ),
    );
    // An Atom feed in English whose entry declares German for French text: the entry's
    // own declaration is the partner's word on it and wins.
    server.route(
        "/atom.xml",
        Route::ok(
            "application/atom+xml",
            format!("<?xml version=\"1.0\"?><feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"en\"><title>A</title><id>urn:a</id><updated>2017-10-09T12:00:00Z</updated>\
             <entry xml:lang=\"de\"><title>Erklärt als Deutsch</title><id>urn:a:1</id><updated>2017-10-09T12:00:00Z</updated><link href=\"https://a.example/1\"/><summary>{FR2}</summary></entry>\
             <entry><title>Not declared here</title><id>urn:a:2</id><updated>2017-10-08T12:00:00Z</updated><link href=\"https://a.example/2\"/><summary>{DE2}</summary></entry></feed>"),
        ),
    );
    let p = project(&server);
    p.run(&["build"]).success();
    let langs = languages(&p);
    let want = [
        ("Annual report online", "en-GB"),
        ("Working together", "en-GB"),
        ("Prévention dans les quartiers", "fr"),
        ("Prävention in den Quartieren", "de"),
        ("New board elected", "en-GB"),
        ("Rapport annuel", "en-GB"),
        ("Erklärt als Deutsch", "de"),
        ("Not declared here", "de"),
    ];
    for (title, lang) in want {
        assert_eq!(
            langs.get(title).map(String::as_str),
            Some(lang),
            "{title}: {langs:?}"
        );
    }
    // The language channels follow.
    let fr = p.read("public/lang/fr.atom");
    assert!(fr.contains("Prévention dans les quartiers"), "{fr}");
    assert!(!fr.contains("Rapport annuel"));
    let en = p.read("public/lang/en.atom");
    assert!(en.contains("Annual report online") && en.contains("New board elected"));
    assert!(!en.contains("Prävention in den Quartieren"));
}

/* feedwerk embed: shows the latest news in an element of the partner's page.
 *
 *   <div id="defus-news"></div>
 *   <script src="https://…/embed.js" data-target="defus-news" data-n="5"
 *           data-channel="all" async></script>
 *
 * data-channel: "all", or a channel path such as "sources/efus", "tags/<tag>",
 * "lang/en". The list is built with DOM calls and textContent only: nothing from the
 * feed is ever parsed as HTML, and no inline event handlers are added.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.fetch || !window.URL) { return; }
  var targetId = script.getAttribute("data-target") || "feedwerk-news";
  var n = parseInt(script.getAttribute("data-n") || "5", 10);
  if (!(n >= 1 && n <= 50)) { n = 5; }
  var channel = script.getAttribute("data-channel") || "all";
  if (!/^(all|(sources|tags|lang|channels)\/[a-z0-9][a-z0-9_-]*)$/.test(channel)) { channel = "all"; }
  var feedUrl = new URL(channel === "all" ? "feed.json" : channel + ".json", script.src);
  var timeZone = "Europe/Berlin";

  function safeHref(u) {
    try {
      var url = new URL(u);
      return (url.protocol === "https:" || url.protocol === "http:") ? url.href : null;
    } catch (e) { return null; }
  }

  function dateDe(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return ""; }
    try {
      return d.toLocaleDateString("de-DE", { timeZone: timeZone, day: "2-digit", month: "2-digit", year: "numeric" });
    } catch (e) {
      return d.toISOString().slice(0, 10);
    }
  }

  function render(target, feed) {
    var ul = document.createElement("ul");
    ul.className = "feedwerk-embed";
    ul.setAttribute("aria-label", String(feed.title || ""));
    var items = Array.isArray(feed.items) ? feed.items.slice(0, n) : [];
    items.forEach(function (it) {
      var li = document.createElement("li");
      var href = safeHref(it.url);
      var title = document.createElement(href ? "a" : "span");
      title.textContent = String(it.title || "");
      if (href) {
        title.href = href;
        title.rel = "noopener";
        title.target = "_blank";
      }
      li.appendChild(title);
      li.appendChild(document.createTextNode(" "));
      var meta = document.createElement("span");
      meta.className = "feedwerk-meta";
      var time = document.createElement("time");
      time.dateTime = String(it.date_published || "");
      time.textContent = dateDe(it.date_published);
      meta.appendChild(time);
      var source = it._feedwerk && it._feedwerk.source_title;
      if (source) { meta.appendChild(document.createTextNode(" · " + String(source))); }
      li.appendChild(meta);
      ul.appendChild(li);
    });
    if (!items.length) {
      var empty = document.createElement("li");
      empty.textContent = "Noch keine Meldungen.";
      ul.appendChild(empty);
    }
    target.replaceChildren(ul);
  }

  function start() {
    var target = document.getElementById(targetId);
    if (!target) { return; }
    fetch(feedUrl.href, { credentials: "omit" })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (feed) { render(target, feed); })
      .catch(function () { target.textContent = "Die Meldungen konnten nicht geladen werden."; });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

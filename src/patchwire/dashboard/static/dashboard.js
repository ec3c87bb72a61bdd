// Patchwire dashboard: live partial updates without a framework (served locally).
//   data-poll="URL" data-every="ms"  re-fetch URL (with X-Partial: 1) and swap the element;
//                                     the new element carries on polling only if the server
//                                     still marks it data-poll (a finished run stops).
//   <form data-swap="#target">        submit in the background and swap the answer into the
//                                     target (its contents; the element itself with
//                                     data-outer); data-push records GET filters in the URL.
//   data-autosubmit on a select       submits its form on change.
// Without JavaScript every form still posts normally and the server redirects.
(function () {
  "use strict";
  var PARTIAL = { "X-Partial": "1" };

  function fetchHtml(url, options) {
    options = options || {};
    options.headers = Object.assign({}, PARTIAL, options.headers || {});
    options.credentials = "same-origin";
    return fetch(url, options).then(function (resp) {
      return resp.text().then(function (text) { return { ok: resp.ok, text: text }; });
    });
  }

  function fragment(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content;
  }

  function swap(target, html, outer) {
    var content = fragment(html);
    if (outer) {
      var first = content.firstElementChild;
      target.replaceWith(content);
      if (first) activate(first);
    } else {
      target.replaceChildren(content);
      activate(target);
    }
  }

  function poll(el) {
    if (el.__polling) return;
    el.__polling = true;
    var every = parseInt(el.getAttribute("data-every") || "2000", 10);
    function again(ms) { setTimeout(tick, ms); }
    function tick() {
      if (!el.isConnected) return;
      if (document.hidden) { again(every); return; }
      fetchHtml(el.getAttribute("data-poll")).then(function (r) {
        if (!el.isConnected) return;
        if (!r.ok) { again(every * 2); return; }
        // keep what the reader opened open across refreshes
        var open = Array.prototype.map.call(el.querySelectorAll("details[open] > summary"),
          function (s) { return s.textContent; });
        var content = fragment(r.text);
        var next = content.firstElementChild;
        el.replaceWith(content);  // the server's element: it polls on only if still marked
        if (!next) return;
        Array.prototype.forEach.call(next.querySelectorAll("details > summary"), function (s) {
          s.parentNode.open = open.indexOf(s.textContent) >= 0 || s.parentNode.open;
        });
        activate(next);
      }).catch(function () { again(every * 2); });
    }
    again(every);
  }

  function submit(form, event) {
    var target = document.querySelector(form.getAttribute("data-swap"));
    if (!target) return;
    var message = form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); return; }
    event.preventDefault();
    var submitter = event.submitter;
    var action = (submitter && submitter.getAttribute("formaction")) || form.getAttribute("action");
    var method = (form.getAttribute("method") || "get").toUpperCase();
    var data = new URLSearchParams(new FormData(form));
    Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) { b.disabled = true; });
    form.setAttribute("aria-busy", "true");
    var request;
    if (method === "GET") {
      var params = new URLSearchParams();
      data.forEach(function (v, k) { if (v !== "") params.append(k, v); });
      var url = action + (params.toString() ? "?" + params.toString() : "");
      if (form.hasAttribute("data-push")) history.pushState(null, "", url);
      request = fetchHtml(url);
    } else {
      request = fetchHtml(action, { method: method, body: data,
        headers: { "Content-Type": "application/x-www-form-urlencoded" } });
    }
    request.then(function (r) {
      swap(target, r.text, form.hasAttribute("data-outer"));
    }).catch(function (err) {
      target.insertAdjacentText("afterbegin", "Request failed: " + err);
    }).finally(function () {
      form.removeAttribute("aria-busy");
      Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) { b.disabled = false; });
    });
  }

  function activate(root) {
    if (root.matches && root.matches("[data-poll]")) poll(root);
    Array.prototype.forEach.call(root.querySelectorAll("[data-poll]"), poll);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.hasAttribute("data-swap")) submit(form, event);
  });
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.hasAttribute && el.hasAttribute("data-autosubmit") && el.form) el.form.requestSubmit();
  });
  window.addEventListener("popstate", function () { location.reload(); });
  document.addEventListener("DOMContentLoaded", function () { activate(document); });
})();

/* Pigeonhole web SDK: phone home on page load and render the App Inbox in a page.
 *
 *   <div id="inbox"></div>
 *   <script src="https://sync.example.com/sdk/inbox.js"></script>
 *   <script>
 *     Pigeonhole.mountInbox(document.getElementById("inbox"), {
 *       appKey: "…",                       // your app key
 *       token: () => fetch("/my-backend/pigeonhole-token").then(r => r.text()),
 *     });
 *   </script>
 *
 * Every message field is rendered as text (never HTML), and links and images are used
 * only when they are http(s) URLs.
 */
(function () {
  "use strict";
  var base = (document.currentScript && new URL(document.currentScript.src).origin) || "";

  function safeUrl(value) {
    try {
      var url = new URL(value);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function client(options) {
    var root = options.baseUrl || base;
    return function call(method, path, body) {
      return Promise.resolve(options.token()).then(function (token) {
        return fetch(root + path, {
          method: method,
          headers: {
            "X-App-Key": options.appKey,
            Authorization: "Bearer " + token,
            "Content-Type": "application/json",
          },
          body: body ? JSON.stringify(body) : undefined,
        }).then(function (response) {
          if (!response.ok) throw new Error("Pigeonhole: " + method + " " + path + " " + response.status);
          return response.json();
        });
      });
    };
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function renderMessage(call, message, refresh) {
    var item = el("li", "ph-message" + (message.read ? "" : " ph-unread"));
    var logo = safeUrl(message.logo || "");
    if (logo) {
      var img = el("img", "ph-logo");
      img.src = logo;
      img.alt = "";
      item.appendChild(img);
    }
    var title = el("strong", "ph-title", message.title || "");
    var link = safeUrl(message.url || "");
    if (link) {
      var a = el("a", "ph-link");
      a.href = link;
      a.rel = "noopener noreferrer";
      if (message.openInNewTab) a.target = "_blank";
      a.appendChild(title);
      item.appendChild(a);
    } else {
      item.appendChild(title);
    }
    item.appendChild(el("p", "ph-text", message.text || ""));
    var image = safeUrl(message.image || "");
    if (image) {
      var picture = el("img", "ph-image");
      picture.src = image;
      picture.alt = "";
      item.appendChild(picture);
    }
    var remove = el("button", "ph-delete", "Delete");
    remove.type = "button";
    remove.addEventListener("click", function (event) {
      event.stopPropagation();
      call("DELETE", "/v1/inbox/" + message.id).then(refresh);
    });
    item.appendChild(remove);
    item.addEventListener("click", function () {
      if (!message.read) call("POST", "/v1/inbox/" + message.id + "/read").then(refresh);
    });
    return item;
  }

  function mountInbox(container, options) {
    var call = client(options);
    function refresh() {
      return call("GET", "/v1/inbox?limit=" + (options.limit || 20)).then(function (page) {
        var list = el("ul", "ph-inbox");
        page.messages.forEach(function (message) {
          list.appendChild(renderMessage(call, message, refresh));
        });
        if (!page.messages.length) list.appendChild(el("li", "ph-empty", options.emptyText || "No messages"));
        container.replaceChildren(list);
        return page;
      });
    }
    return refresh();
  }

  /* The phone home for in-app messages on the web: resolves to the sync answer. */
  function phoneHome(options) {
    var key = "pigeonhole.cursor." + options.appKey;
    var cursor = window.localStorage ? localStorage.getItem(key) : null;
    return client(options)("POST", "/v1/sync", { platform: "web", cursor: cursor }).then(function (answer) {
      if (window.localStorage) localStorage.setItem(key, answer.cursor);
      return answer;
    });
  }

  window.Pigeonhole = { mountInbox: mountInbox, phoneHome: phoneHome, safeUrl: safeUrl };
})();

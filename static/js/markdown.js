// Markdown in messages: markdown-it (static/vendor/markdown-it, CommonMark plus tables and
// strikethrough) with raw HTML off, its output then cut down by DOMPurify (static/vendor/dompurify)
// to an allowlist of tags and attributes. Message content can never inject markup, links go only
// to http(s) and mailto, and images are not rendered (they would load from anywhere).
// markdown-it parses in linear time, also on hostile input (a line of backticks, deeply nested
// emphasis, thousands of unclosed brackets): messaging/tests/test_markdown.py checks it in Chromium.
(function () {
  "use strict";

  const SAFE_LINK = /^(?:https?:|mailto:)/i;
  const ALLOWED_TAGS = [
    "a", "blockquote", "br", "code", "del", "em", "h3", "h4", "h5", "h6", "hr", "li", "ol", "p", "pre",
    "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
  ];
  const PURIFY = {
    ALLOWED_TAGS: ALLOWED_TAGS,
    ALLOWED_ATTR: ["href", "class", "start"],
    ALLOWED_URI_REGEXP: SAFE_LINK,
    RETURN_DOM_FRAGMENT: true,
  };

  const md = window.markdownit
    ? window.markdownit({ html: false, linkify: true, breaks: true, typographer: false, maxNesting: 20 })
    : null;

  if (md) {
    // Bare URLs become links only with their scheme ("example.com" stays text).
    md.linkify.set({ fuzzyLink: false, fuzzyEmail: false, fuzzyIP: false });
    md.disable(["image"]);
    md.validateLink = function (url) {
      return SAFE_LINK.test(url.trim());
    };
    md.core.ruler.push("chat_tweaks", function (state) {
      state.tokens.forEach(function (token) {
        // "#" is a bubble's heading, not a page's: h3 and smaller.
        if (token.type === "heading_open" || token.type === "heading_close") {
          token.tag = "h" + Math.min(6, Number(token.tag.slice(1)) + 2);
        }
        // Table alignment as a class: a style attribute is inline style, which the CSP refuses.
        const style = token.attrGet ? token.attrGet("style") : null;
        if (style) {
          token.attrs = token.attrs.filter(function (attr) { return attr[0] !== "style"; });
          const align = /^text-align:(left|center|right)$/.exec(style);
          if (align) token.attrJoin("class", "align-" + align[1]);
        }
      });
    });
  }

  function render(source) {
    const text = String(source || "");
    if (!md || !window.DOMPurify) {
      // The libraries did not load: show the text as it is rather than nothing.
      const fragment = document.createDocumentFragment();
      fragment.appendChild(document.createTextNode(text));
      return fragment;
    }
    const fragment = window.DOMPurify.sanitize(md.render(text), PURIFY);
    fragment.querySelectorAll("a").forEach(function (a) {
      a.rel = "noopener noreferrer nofollow";
      a.target = "_blank";
    });
    return fragment;
  }

  // Replace an element's text with its rendering; the text stays the source of truth.
  function renderInto(node, source) {
    node.replaceChildren(render(source));
  }

  window.ChatMarkdown = { render: render, renderInto: renderInto };
})();

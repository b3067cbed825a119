// A small Markdown renderer that builds DOM nodes and never parses HTML: message content can't
// inject markup or script. Supports fenced code, headings, lists, quotes, paragraphs, inline code,
// bold and italics (asterisks) and http(s)/mailto links. Anything else shows as the text it is.
(function () {
  "use strict";

  const SAFE_LINK = /^(https?:\/\/|mailto:)/i;
  // Order matters: code first (its content is literal), then links, bold, italics.
  // Underscores are left alone: snake_case names are common in chat about code.
  const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\[([^\]\n]+)\]\(([^)\s]+)\)|\*\*([^*\n]+)\*\*|\*([^*\n]+)\*/;

  function el(tag, className) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    return node;
  }

  function inline(parent, text) {
    let rest = text;
    while (rest) {
      const match = INLINE.exec(rest);
      if (!match) {
        appendText(parent, rest);
        return;
      }
      appendText(parent, rest.slice(0, match.index));
      if (match[1]) {
        const code = el("code");
        code.textContent = match[2];
        parent.appendChild(code);
      } else if (match[3]) {
        if (SAFE_LINK.test(match[4])) {
          const a = el("a");
          a.href = match[4];
          a.rel = "noopener noreferrer nofollow";
          a.target = "_blank";
          inline(a, match[3]);
          parent.appendChild(a);
        } else {
          appendText(parent, match[0]);
        }
      } else if (match[5]) {
        const strong = el("strong");
        inline(strong, match[5]);
        parent.appendChild(strong);
      } else {
        const em = el("em");
        inline(em, match[6]);
        parent.appendChild(em);
      }
      rest = rest.slice(match.index + match[0].length);
    }
  }

  function appendText(parent, text) {
    const lines = text.split("\n");
    lines.forEach(function (line, index) {
      if (index > 0) parent.appendChild(el("br"));
      if (line) parent.appendChild(document.createTextNode(line));
    });
  }

  function render(source) {
    const root = document.createDocumentFragment();
    const lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      const fence = /^\s*(```|~~~)\s*([\w+-]*)\s*$/.exec(line);
      if (fence) {
        const body = [];
        i += 1;
        while (i < lines.length && lines[i].trim() !== fence[1]) body.push(lines[i++]);
        i += 1;
        const pre = el("pre");
        const code = el("code", fence[2] ? "language-" + fence[2] : "");
        code.textContent = body.join("\n");
        pre.appendChild(code);
        root.appendChild(pre);
        continue;
      }
      const heading = /^(#{1,6})\s+(.*)$/.exec(line);
      if (heading) {
        const h = el("h" + Math.min(6, heading[1].length + 2));
        inline(h, heading[2]);
        root.appendChild(h);
        i += 1;
        continue;
      }
      const listItem = /^\s*([-*+]|\d+[.)])\s+/;
      if (listItem.test(line)) {
        const ordered = /^\s*\d/.test(line);
        const list = el(ordered ? "ol" : "ul");
        while (i < lines.length && listItem.test(lines[i])) {
          const li = el("li");
          inline(li, lines[i].replace(listItem, ""));
          list.appendChild(li);
          i += 1;
        }
        root.appendChild(list);
        continue;
      }
      if (/^\s*>/.test(line)) {
        const quote = el("blockquote");
        const body = [];
        while (i < lines.length && /^\s*>/.test(lines[i])) body.push(lines[i++].replace(/^\s*>\s?/, ""));
        inline(quote, body.join("\n"));
        root.appendChild(quote);
        continue;
      }
      if (!line.trim()) {
        i += 1;
        continue;
      }
      const body = [];
      while (i < lines.length && lines[i].trim() && !/^\s*(```|~~~|#{1,6}\s|>|[-*+]\s|\d+[.)]\s)/.test(lines[i])) {
        body.push(lines[i++]);
      }
      if (!body.length) body.push(lines[i++]);
      const p = el("p");
      inline(p, body.join("\n"));
      root.appendChild(p);
    }
    return root;
  }

  // Replace an element's text with its rendering; the text stays the source of truth.
  function renderInto(node, source) {
    node.replaceChildren(render(source));
  }

  window.ChatMarkdown = { render: render, renderInto: renderInto };
})();

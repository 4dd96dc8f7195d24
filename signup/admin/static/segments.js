// Live SMS segment count under every textarea marked data-segments, for the text that will
// really be sent: the textarea's own text, or when it is empty the default for the language and
// way out chosen in the same form, with {campaign}, {number} and {optout_number} filled in from
// the form, as signup/messaging/texts.py renders it. Counted by the rules of
// signup/messaging/segments.py: GSM-7 160/153 with extension characters counting double,
// otherwise UCS-2 70/67 in UTF-16 code units. tests/e2e/test_admin_browser.py compares the two.
(function () {
  "use strict";
  var BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var EXTENSION = "^{}\\[~]|€\f";

  function count(text) {
    var gsm = true, units = 0, i, ch;
    for (i = 0; i < text.length; i++) {
      ch = text.charAt(i);
      if (EXTENSION.indexOf(ch) >= 0) { units += 2; }
      else if (BASIC.indexOf(ch) >= 0) { units += 1; }
      else { gsm = false; break; }
    }
    if (!gsm) { units = text.length; }  // UTF-16 code units, as operators bill UCS-2
    var single = gsm ? 160 : 70, multi = gsm ? 153 : 67;
    var parts = units === 0 ? 0 : (units <= single ? 1 : Math.ceil(units / multi));
    return { encoding: gsm ? "GSM-7" : "UCS-2", units: units, segments: parts };
  }

  function value(form, name) {
    var field = form.elements.namedItem(name);
    return field ? field.value.trim() : "";
  }

  // Python's str.format for our three names: {{ and }} are literal braces.
  function fill(template, form) {
    var values = {
      campaign: value(form, "name"),
      number: value(form, "number"),
      optout_number: value(form, "optout_number")
    };
    return template.replace(/\{\{|\}\}|\{(\w+)\}/g, function (whole, name) {
      if (whole === "{{") { return "{"; }
      if (whole === "}}") { return "}"; }
      return Object.prototype.hasOwnProperty.call(values, name) ? values[name] : whole;
    });
  }

  function sent(area, form) {
    var own = area.value.trim();  // the server stores the text stripped
    if (own) { return { custom: true, text: fill(own, form) }; }
    var defaults = JSON.parse(area.getAttribute("data-defaults"));
    var byWay = defaults[value(form, "language")] || defaults.en;
    var way = value(form, "optout_number") ? "optout" : "stop";
    return { custom: false, text: fill(byWay[way], form) };
  }

  function attach(area, words) {
    var form = area.form;
    var out = document.createElement("small");
    out.className = "segments";
    out.setAttribute("aria-live", "polite");
    area.insertAdjacentElement("afterend", out);
    function update() {
      var shown = sent(area, form), c = count(shown.text);
      out.setAttribute("data-encoding", c.encoding);
      out.setAttribute("data-units", String(c.units));
      out.setAttribute("data-segments", String(c.segments));
      out.textContent = (shown.custom ? words.custom : words["default"]) + ": " + c.encoding +
        " · " + c.units + " " + words.characters + " · " + c.segments + " " +
        (c.segments === 1 ? words.segment : words.segments) +
        (c.segments > 2 ? " (" + words.warn + ")" : "");
      out.classList.toggle("warn", c.segments > 2);
    }
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var holder = document.getElementById("segment-words");
    var words = holder ? JSON.parse(holder.getAttribute("data-words")) : {
      "default": "Default", custom: "Text", characters: "characters",
      segment: "segment", segments: "segments", warn: "more than two segments"
    };
    var areas = document.querySelectorAll("textarea[data-segments]");
    for (var i = 0; i < areas.length; i++) { attach(areas[i], words); }
  });
})();

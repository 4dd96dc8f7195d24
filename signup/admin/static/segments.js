// Live SMS segment count beside every textarea marked data-segments (same rules as
// signup/messaging/segments.py: GSM-7 160/153 with extension characters counting double,
// otherwise UCS-2 70/67). Placeholders are counted as written; the server shows the real text.
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

  function attach(area) {
    var out = document.createElement("small");
    out.className = "segments";
    out.setAttribute("aria-live", "polite");
    area.insertAdjacentElement("afterend", out);
    function update() {
      var c = count(area.value);
      out.textContent = c.encoding + " · " + c.units + " characters · " + c.segments +
        (c.segments === 1 ? " segment" : " segments");
      out.classList.toggle("warn", c.segments > 2);
    }
    area.addEventListener("input", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var areas = document.querySelectorAll("textarea[data-segments]");
    for (var i = 0; i < areas.length; i++) { attach(areas[i]); }
  });
})();

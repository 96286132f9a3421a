// Names for the controls Django's own admin scripts build without one (loaded by
// templates/admin/base_site.html, deferred, so it runs after them).
"use strict";

(function () {
    function labelText(select) {
        const label = select.id && document.querySelector('label[for="' + select.id + '"]');
        return label ? label.textContent.replace(/:\s*$/, "").trim() : select.name;
    }

    // The "filter horizontal" picker (SelectFilter2.js) names its search boxes by an aria-label on a bare
    // <span> icon, which ARIA does not allow: as an image the icon may carry the name.
    function nameFilterIcons() {
        document.querySelectorAll(".selector .search-label-icon[aria-label]").forEach(function (icon) {
            icon.setAttribute("role", "img");
        });
    }

    // An autocomplete field (select2) is a combobox named by the text of its current choice, which is
    // empty until something is chosen: it is named by the field's label instead.
    function nameAutocompletes() {
        document.querySelectorAll("select.admin-autocomplete").forEach(function (select) {
            const container = select.nextElementSibling;
            if (!container || !container.classList.contains("select2")) {
                return;
            }
            const name = labelText(select);
            const combobox = container.querySelector('.select2-selection[role="combobox"]');
            const rendered = container.querySelector(".select2-selection__rendered");
            if (combobox) {
                combobox.removeAttribute("aria-labelledby");
                combobox.setAttribute("aria-label", name);
            }
            if (rendered) {
                rendered.setAttribute("aria-label", name);
            }
        });
    }

    function nameAll() {
        nameFilterIcons();
        nameAutocompletes();
    }

    // Both scripts build their controls on "load" (and select2 again for each inline row added).
    window.addEventListener("load", function () {
        window.setTimeout(nameAll, 0);
    });
    document.addEventListener("formset:added", function () {
        window.setTimeout(nameAll, 0);
    });
})();

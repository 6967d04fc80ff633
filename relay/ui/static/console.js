// relay console: the little a page gains from script. Everything works without it.
// "Select every dead delivery" on the deliveries page, added only where
// there are dead deliveries to select.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("bulk");
  if (!form) return;
  var boxes = form.querySelectorAll('input[type="checkbox"][name="id"]');
  if (boxes.length < 2) return;
  var button = document.createElement("button");
  button.type = "button";
  button.textContent = "Select every dead delivery on this page";
  button.addEventListener("click", function () {
    var all = Array.prototype.every.call(boxes, function (b) { return b.checked; });
    Array.prototype.forEach.call(boxes, function (b) { b.checked = !all; });
    button.textContent = all ? "Select every dead delivery on this page" : "Clear the selection";
  });
  var pager = form.querySelector(".pager");
  if (pager) pager.appendChild(button);
});

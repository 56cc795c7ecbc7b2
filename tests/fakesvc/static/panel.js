// The fake service's dashboard panel: a title, nothing else.
(() => {
  if (!(window.netfate && window.netfate.registerPanel)) return;
  window.netfate.registerPanel({ id: "fake", title: "Fake service", mount(el, ctx) { el.append(ctx.h("p", {}, "fake")); } });
})();

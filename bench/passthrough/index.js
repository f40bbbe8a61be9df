// The runtime's own floor for the benchmark: a bare Worker that forwards every request unchanged to
// TARGET (the benchmark's trivial sink): no Durable Object, no auth, no tracing.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    return fetch(new Request(new URL(url.pathname + url.search, env.TARGET), request));
  },
};

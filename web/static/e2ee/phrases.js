export class PhraseMatcher {
  async load() {}

  check() {
    return null;
  }

  dismiss() {}
}

// Placeholder, replaced below.
export class LocalCaptions {
  constructor({ onCaption, onStatus }) {
    this.onCaption = onCaption;
    this.onStatus = onStatus;
  }

  start() {}

  stop() {}

  statusText() {
    return "";
  }
}

// Video tiles, one per participant, labelled with their name. User text goes in as text only.

export class Tiles {
  constructor(container) {
    this.container = container;
    this.tiles = new Map(); // participant id -> { element, video, stream, label }
  }

  ensure(id, name, { self = false } = {}) {
    let tile = this.tiles.get(id);
    if (!tile) {
      const element = document.createElement("figure");
      element.className = "tile";
      element.dataset.participantId = id;
      if (self) element.classList.add("self");
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      video.muted = self; // never play our own microphone back
      const label = document.createElement("figcaption");
      element.append(video, label);
      this.container.append(element);
      tile = { element, video, label, stream: new MediaStream() };
      video.srcObject = tile.stream;
      this.tiles.set(id, tile);
    }
    tile.label.textContent = self ? `${name} (you)` : name;
    tile.video.setAttribute("aria-label", `Video of ${name}`);
    return tile;
  }

  setTracks(id, tracks) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    const wanted = Object.values(tracks).filter(Boolean);
    for (const track of tile.stream.getTracks()) {
      if (!wanted.includes(track)) tile.stream.removeTrack(track);
    }
    for (const track of wanted) {
      if (!tile.stream.getTracks().includes(track)) tile.stream.addTrack(track);
    }
    tile.element.classList.toggle("no-video", !tracks.video);
    tile.video.play().catch(() => {});
  }

  remove(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    tile.element.remove();
    this.tiles.delete(id);
  }

  clear() {
    for (const id of [...this.tiles.keys()]) this.remove(id);
  }
}

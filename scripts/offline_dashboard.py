"""Make a published asv dashboard open without internet.

`asv publish` writes pages that load jQuery, flot, bootstrap and a few plugins from public CDNs;
offline, the dashboard only says "One or more external (JavaScript) dependencies failed to
load". This installs the same scripts from the npm registry at the versions pinned in
asv_bench/vendor/package-lock.json (`npm ci`: npm checks every package against the lock's
sha512), checks each file it serves against the sha256 pinned below, copies them under
HTML/vendor/, and points every page at its local copy, with a subresource-integrity hash of that
copy so the browser checks it too.

    python scripts/offline_dashboard.py asv_bench/html     # scripts/asv.sh runs it after publishing

Where npm holds the very file the CDN serves (jQuery, bootstrap, orderBars, md5), its hash equals
the page's own integrity attribute, and the script says so. flot comes unminified from npm (the
CDN serves a minified build of the same 0.8.3 source), and npm has no stupidtable 1.0.1: 1.1.3,
its next release, serves instead.
"""
import argparse
import base64
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

VENDOR = Path(__file__).resolve().parent.parent / "asv_bench" / "vendor"

# the end of each CDN address asv's pages load -> (the file in node_modules, its sha256)
FILES = {
    "jquery-3.3.1.min.js": (
        "jquery/dist/jquery.min.js", "160a426ff2894252cd7cebbdd6d6b7da8fcd319c65b70468f10b6690c45d02ef"),
    "flot/0.8.3/jquery.flot.min.js": (
        "flot/jquery.flot.js", "b7b931f273c38b1277b9c6c1f4e05c4ec09885a487bddaf3279e2d7e49a38e12"),
    "flot/0.8.3/jquery.flot.time.min.js": (
        "flot/jquery.flot.time.js", "a582c832adc7138a6b05aaf61f16ebac274701f1be4afea77e739a1c34b9c41a"),
    "flot/0.8.3/jquery.flot.selection.min.js": (
        "flot/jquery.flot.selection.js", "e6c85f6c1ebe4b4da29d8ae238c7c5060283f05f7ef054f6b91817d02c092918"),
    "flot/0.8.3/jquery.flot.categories.min.js": (
        "flot/jquery.flot.categories.js", "6e81664b28ea795c734906f4aa15614640a75ac7fbd399a7fb9084040698351a"),
    "js/jquery.flot.orderBars.js": (
        "flot-orderbars/js/jquery.flot.orderBars.js", "39735b4f46f96ff4e082572401f47c55a2767b366fd1d1e821e44a8d830a12bf"),
    "stupidtable.min.js": (
        "stupid-table-plugin/stupidtable.min.js", "4642380f28ebe9ed7cac251793b281ef8620c4386205d92788f9b12f5cceb4e0"),
    "js/md5.min.js": (
        "blueimp-md5/js/md5.min.js", "64d7ded388c562e4bde9e58ce205e5fa01b9734fcd434d496eb7b4fbfe9b927d"),
    "dist/js/bootstrap.min.js": (
        "bootstrap/dist/js/bootstrap.min.js", "898d05a17f2cfc5120ddcdba47a885c378c0b466f30f0700e502757e24b403a1"),
    "dist/css/bootstrap.min.css": (
        "bootstrap/dist/css/bootstrap.min.css", "e9503448692b738dd260fbd7f7cabf2e11f09b600fa97e6eb3a56eba5b1a7e9b"),
}
# what bootstrap's stylesheet loads beside itself (../fonts/), copied along
FONTS = {f"bootstrap/dist/fonts/glyphicons-halflings-regular.{ext}": digest for ext, digest in (
    ("eot", "f495f34e4f177cf0115af995bbbfeb3fcabc88502876e76fc51a4ab439bc8431"),
    ("svg", "d168d50a88c730b4e6830dc0da2a2b51dae4658a77d9619943c27b8ecfc19d1a"),
    ("ttf", "bd18efd3efd70fec8ad09611a20cdbf99440b2c1d40085c29be036f891d65358"),
    ("woff", "fc969dc1c6ff531abcf368089dcbaf5775133b0626ff56b52301a059fc0f9e1e"))}

TAG = re.compile(r"<(script|link)\b[^>]*?(?:src|href)=\"(https?://[^\"]+)\"[^>]*>", re.S)


class Refused(Exception):
    """A file that does not match its pinned hash, an address with no local copy, no npm."""


def install(vendor=VENDOR):
    """node_modules from the lock file, unless every pinned file is already there and intact."""
    if all(_sha256(vendor / "node_modules" / path) == digest for path, digest in _pinned()):
        return
    if shutil.which("npm") is None:
        raise Refused("npm is needed once to fetch the dashboard's scripts (apt-get install npm); "
                      "after that the dashboard builds offline")
    out = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=vendor,
                         capture_output=True, text=True)
    if out.returncode:
        raise Refused(f"npm ci failed in {vendor}:\n{out.stderr[-2000:]}")


def _pinned():
    return [*FILES.values(), *FONTS.items()]


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _sri(data, algorithm="sha384"):
    return f"{algorithm}-" + base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def localise(html_dir, vendor=VENDOR, log=print):
    """Copy the pinned files under html_dir/vendor and point every page of html_dir at them;
    returns the addresses replaced. Refuses (Refused) a file whose hash differs from its pin and
    a CDN address it has no copy for, leaving the pages as they were."""
    html_dir = Path(html_dir)
    modules = vendor / "node_modules"
    for path, digest in _pinned():
        found = _sha256(modules / path)
        if found != digest:
            raise Refused(f"{modules / path}: sha256 {found}, pinned {digest}; run npm ci in {vendor} "
                          f"(or update the pins in {Path(__file__).name} on purpose)")
    pages = sorted(html_dir.glob("*.html"))
    if not pages:
        raise Refused(f"{html_dir} holds no .html page: run `asv publish` first")
    new_text, replaced = {}, []
    for page in pages:
        text = page.read_text()

        def swap(m):
            url = m.group(2)
            key = next((k for k in FILES if url.endswith(k)), None)
            if key is None:
                raise Refused(f"{page.name} loads {url}, for which there is no local copy: add it to "
                              f"asv_bench/vendor/package.json and FILES in {Path(__file__).name}")
            path = FILES[key][0]
            data = (modules / path).read_bytes()
            same = re.search(r'integrity="([^"]+)"', m.group(0))
            if same and same.group(1) == _sri(data, same.group(1).split("-")[0]):
                log(f"{path}: the very file the CDN serves (its integrity hash matches)")
            attr = "src" if m.group(1) == "script" else "href"
            tag = re.sub(r'\s(integrity|crossorigin|referrerpolicy)="[^"]*"', "", m.group(0))
            tag = tag.replace(f'{attr}="{url}"', f'{attr}="vendor/{path}" integrity="{_sri(data)}"')
            replaced.append(url)
            return tag
        new_text[page] = TAG.sub(swap, text)
    for path, _ in _pinned():
        target = html_dir / "vendor" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(modules / path, target)
    for page, text in new_text.items():
        page.write_text(text)
    return replaced


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("html", help="the folder `asv publish` wrote (asv_bench/html)")
    args = p.parse_args(argv)
    try:
        install()
        replaced = localise(args.html)
    except Refused as exc:
        print(f"offline_dashboard: {exc}", file=sys.stderr)
        return 1
    print(f"{len(replaced)} CDN addresses now served from {Path(args.html) / 'vendor'}, each checked by sha256")
    return 0


if __name__ == "__main__":
    sys.exit(main())

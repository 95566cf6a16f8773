"""`onnxsym.converters` and `onnxsym.models` when onnxsym is imported from a source checkout.

The repository keeps `converters/` and `models/` beside `onnxsym/`; the wheel installs them inside the package
(pyproject's package-dir), so an installed onnxsym never puts a generic top-level name into site-packages. Run
from the checkout itself (tests, benchmarks), the two folders are found here under the same names.
"""
import importlib.util
import os
import sys

SUBPACKAGES = ("converters", "models")


class _CheckoutFinder:
    """Finds `onnxsym.<name>` (name in SUBPACKAGES) in the checkout folder `<root>/<name>`."""

    def __init__(self, root):
        self.root = root

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.partition(".")
        if package != __package__ or name not in SUBPACKAGES:
            return None
        init = os.path.join(self.root, name, "__init__.py")
        return importlib.util.spec_from_file_location(fullname, init,
                                                      submodule_search_locations=[os.path.dirname(init)])


def install(package_dir=os.path.dirname(os.path.abspath(__file__))):
    """Adds the finder when `package_dir` (onnxsym/) is a checkout's: no `converters/` inside, one beside."""
    root = os.path.dirname(package_dir)
    in_checkout = all(not os.path.isdir(os.path.join(package_dir, name))
                      and os.path.isfile(os.path.join(root, name, "__init__.py")) for name in SUBPACKAGES)
    if in_checkout and not any(isinstance(f, _CheckoutFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _CheckoutFinder(root))


install()

__all__ = ["SUBPACKAGES", "install"]

"""Drop-in layers for code written against other packages' APIs (``ssseg.compat.sam2``: Meta's ``sam2``)."""

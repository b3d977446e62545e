// Train: see DESIGN.md. Contents land with their issues.

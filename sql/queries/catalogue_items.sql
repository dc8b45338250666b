SELECT id, title, description, category FROM items ORDER BY created_at DESC, id DESC LIMIT :limit
